"""A triage decision is counted when it is committed, not when a handler that may run again
(a retried batch) makes it."""

from __future__ import annotations

import uuid
from pathlib import Path

from servicedesk_contracts import messages as m
from servicedesk_runtime.clock import ManualClock
from servicedesk_runtime.database import DatabaseUrl
from servicedesk_runtime.metrics import CATALOGUE
from servicedesk_runtime.store import ServiceStore
from servicedesk_stack.demo import provider_r_medium
from servicedesk_triage.application import TriageDesk

from .test_triage_desk import AGREEMENT, NOW, opened


def triaged() -> float:
    labels = {"category": "incident", "priority": "A"}
    return CATALOGUE.get_sample_value("servicedesk_tickets_triaged_total", labels) or 0.0


def test_a_decision_is_counted_once_however_often_its_batch_was_applied(tmp_path: Path) -> None:
    store = ServiceStore(DatabaseUrl.parse(f"sqlite:///{tmp_path}/t.db", "triage"), "triage")
    handlers = TriageDesk(ManualClock(NOW)).handlers()
    registered = m.AgreementRegistered.create(
        producer="billing", subject_id=AGREEMENT, data=provider_r_medium()
    )
    uow = store.unit_of_work()
    handlers["AgreementRegistered"](registered, uow)
    uow.commit()
    ticket = opened(uuid.uuid4())
    before = triaged()

    handlers["TicketOpened"](ticket, store.unit_of_work())  # a batch thrown away
    assert triaged() == before
    uow = store.unit_of_work()
    handlers["TicketOpened"](ticket, uow)
    uow.commit()
    assert triaged() == before + 1
    store.close()
