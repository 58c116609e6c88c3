"""Triage's handlers on a real (SQLite) event store: a ticket that names an agreement not
yet known waits for it, and is decided once, when it arrives."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from servicedesk_contracts import messages as m
from servicedesk_runtime.clock import ManualClock
from servicedesk_runtime.consumer import Rejected
from servicedesk_runtime.database import DatabaseUrl
from servicedesk_runtime.metrics import CATALOGUE, TICKETS_PARKED
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


def priority_change(ticket_id: uuid.UUID, priority: str, by_customer: bool) -> m.Message:
    return m.TicketPriorityChangeRequested.create(
        producer="intake",
        subject_id=ticket_id,
        data={
            "priority": priority,
            "changed_by": "jens",
            "by_customer": by_customer,
            "reason": "the warehouse stands still",
            "reference": "SD-000001",
            "requested_at": NOW,
        },
    )


def test_agents_change_priorities_traceably_and_customers_only_where_allowed(
    tmp_path: Path,
) -> None:
    store = ServiceStore(DatabaseUrl.parse(f"sqlite:///{tmp_path}/t.db", "triage"), "triage")
    handlers = TriageDesk(ManualClock(NOW)).handlers()
    ticket_id = uuid.uuid4()
    uow = store.unit_of_work()
    handlers["AgreementRegistered"](
        m.AgreementRegistered.create(
            producer="billing", subject_id=AGREEMENT, data=provider_r_medium()
        ),
        uow,
    )
    handlers["TicketOpened"](opened(ticket_id), uow)
    uow.commit()

    change = handlers["TicketPriorityChangeRequested"]
    with pytest.raises(Rejected) as refused:  # R does not let customers override
        change(priority_change(ticket_id, "B", by_customer=True), store.unit_of_work())
    assert refused.value.reason == "override_not_allowed"
    with pytest.raises(Rejected, match="'P1' is not a priority of R-ABCD"):
        change(priority_change(ticket_id, "P1", by_customer=False), store.unit_of_work())

    uow = store.unit_of_work()
    change(priority_change(ticket_id, "B", by_customer=False), uow)
    uow.commit()
    assert decisions(store) == ["A", "B"]
    events = [
        store.mapper.to_domain_event(n) for n in store.process_recorder.select_notifications(1, 100)
    ]
    (latest,) = [e for e in events if isinstance(e, Triage.Decided) and e.priority == "B"]
    assert latest.reason == "changed from A by jens: the warehouse stands still"
    assert latest.decided_by == "jens"
    store.close()


def test_a_ticket_for_an_unknown_agreement_waits_visibly_and_is_triaged_when_it_arrives(
    tmp_path: Path,
) -> None:
    path = f"sqlite:///{tmp_path}/t.db"
    store = ServiceStore(DatabaseUrl.parse(path, "triage"), "triage")
    desk = TriageDesk(ManualClock(NOW))
    handlers = desk.handlers()
    first, second = uuid.uuid4(), uuid.uuid4()

    uow = store.unit_of_work()
    handlers["TicketOpened"](opened(first), uow)
    handlers["TicketOpened"](opened(second), uow)
    assert parked_gauge() == 0  # a retried handler must not count twice: after commit only
    uow.commit()
    assert parked_gauge() == 2
    assert set(desk.parked(store)) == {str(first), str(second)}
    assert desk.parked(store)[str(first)]["agreement_id"] == str(AGREEMENT)

    TICKETS_PARKED.set(0)  # a restart: the gauge comes back from the store
    restarted = ServiceStore(DatabaseUrl.parse(path, "triage"), "triage")
    desk.report_parked(restarted)
    assert parked_gauge() == 2

    uow = store.unit_of_work()
    handlers["AgreementRegistered"](
        m.AgreementRegistered.create(
            producer="billing", subject_id=AGREEMENT, data=provider_r_medium()
        ),
        uow,
    )
    uow.commit()
    assert decisions(store) == ["A", "A"]
    assert desk.parked(store) == {}
    assert parked_gauge() == 0
    store.close()
    restarted.close()


def parked_gauge() -> float | None:
    return CATALOGUE.get_sample_value("servicedesk_tickets_parked")
