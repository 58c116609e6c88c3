"""Triage's handlers on a real (SQLite) event store: a ticket that names an agreement not
yet known waits for it, and is decided once, when it arrives."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from servicedesk_contracts import messages as m
from servicedesk_runtime.clock import ManualClock
from servicedesk_runtime.database import DatabaseUrl
from servicedesk_runtime.store import ServiceStore
from servicedesk_stack.demo import provider_r_medium
from servicedesk_triage.application import TriageDesk
from servicedesk_triage.domain import Triage

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
AGREEMENT = uuid.uuid4()


def opened(ticket_id: uuid.UUID) -> m.TicketOpened:
    return m.TicketOpened.create(
        producer="intake",
        subject_id=ticket_id,
        data={
            "agreement_id": AGREEMENT,
            "reporter_email": "anna@acme.example",
            "reporter_name": "Anna",
            "organisation": "Acme",
            "channel": "portal",
            "subject": "Scanners offline",
            "body": "Hall 2",
            "category": "Incident",
            "impact": "multiple users",
            "urgency": "high",
            "reference": "SD-000001",
            "received_at": NOW,
        },
    )


def decisions(store: ServiceStore) -> list[str]:
    events = [
        store.mapper.to_domain_event(n)
        for n in store.process_recorder.select_notifications(1, 1000)
    ]
    return [e.priority for e in events if isinstance(e, Triage.Decided)]


def test_a_ticket_waits_for_its_agreement_and_is_decided_once(tmp_path: Path) -> None:
    store = ServiceStore(DatabaseUrl.parse(f"sqlite:///{tmp_path}/t.db", "triage"), "triage")
    handlers = TriageDesk(ManualClock(NOW)).handlers()
    ticket_id = uuid.uuid4()

    uow = store.unit_of_work()
    handlers["TicketOpened"](opened(ticket_id), uow)
    uow.commit()
    assert decisions(store) == []  # no terms yet: parked, not guessed

    registered = m.AgreementRegistered.create(
        producer="billing", subject_id=AGREEMENT, data=provider_r_medium()
    )
    uow = store.unit_of_work()
    handlers["AgreementRegistered"](registered, uow)
    uow.commit()
    assert decisions(store) == ["A"]  # R: multiple users x high criticality

    uow = store.unit_of_work()  # the agreement changes: nothing is decided again
    handlers["AgreementRegistered"](registered, uow)
    handlers["TicketOpened"](opened(ticket_id), uow)
    uow.commit()
    assert decisions(store) == ["A"]
    store.close()
