"""Events stored by earlier code still load: the stores are the system's memory, and a
service that cannot read its own history has lost it.

`tests/data/stored_events/` holds every event each service stored during a day at the desk
(written by `tests/stored_events/record.py` with the code of that month). Each is put into
a fresh store and every aggregate is loaded and read through the properties the services
use. When a domain event gains a field, give its class a `class_version` and an
`upcast_vN_vN+1` static method (eventsourcing's mechanism) that fills the field for old
events; when a class moves, register its old topic. Otherwise this test fails.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
from eventsourcing.persistence import StoredEvent

from servicedesk_billing.domain import Agreement, MonthLedger
from servicedesk_runtime.agreements import AgreementCopy
from servicedesk_runtime.database import DatabaseUrl
from servicedesk_runtime.store import ServiceStore
from servicedesk_sla_timer.domain import SlaClock
from servicedesk_stack.stack import SERVICES

GOLDEN = Path(__file__).parent / "data" / "stored_events"
GOLDEN_FILES = sorted(GOLDEN.glob("*.json"))


@pytest.mark.parametrize("golden", GOLDEN_FILES, ids=[p.name for p in GOLDEN_FILES])
def test_every_stored_event_of_an_earlier_version_still_loads(golden: Path, tmp_path: Path) -> None:
    service = golden.name.split(".")[0]
    store = ServiceStore(DatabaseUrl.parse(f"sqlite:///{tmp_path}/s.db", service), service)
    rows = json.loads(golden.read_text())
    store.recorder.insert_events(
        [
            StoredEvent(
                originator_id=uuid.UUID(row["originator_id"]),
                originator_version=row["originator_version"],
                topic=row["topic"],
                state=base64.b64decode(row["state"]),
            )
            for row in rows
        ]
    )
    loaded = [store.repository.get(i) for i in {uuid.UUID(row["originator_id"]) for row in rows}]
    assert loaded
    for aggregate in loaded:
        read_as_the_service_does(aggregate)
    store.close()


def read_as_the_service_does(aggregate: object) -> None:
    """Touches what the services derive from stored state (terms, calendars, ledgers)."""
    if isinstance(aggregate, Agreement):
        assert aggregate.terms.customer
        assert aggregate.fee_periods("2026-11") is not None
    elif isinstance(aggregate, AgreementCopy):
        assert aggregate.terms is None or aggregate.terms.customer
    elif isinstance(aggregate, SlaClock):
        assert aggregate.kind in ("response", "resolution")
        if aggregate.calendar_json is not None:
            assert aggregate._calendar().zone
    elif isinstance(aggregate, MonthLedger):
        assert aggregate.month
        entries, adjustments = aggregate.statement_entries()
        assert all(e.minutes > 0 and e.reference for e in (*entries, *adjustments))


def test_there_is_a_golden_history_for_every_service_with_a_store() -> None:
    services = {p.name.split(".")[0] for p in GOLDEN_FILES}
    assert services == set(SERVICES)  # the gateway too: it stores the commands it accepted
