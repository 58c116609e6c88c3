"""Intake's handlers on a real (SQLite) event store: time entries are checked before they
are accepted, and a refusal changes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from servicedesk_contracts import messages as m
from servicedesk_intake.application import Intake
from servicedesk_runtime.clock import ManualClock
from servicedesk_runtime.consumer import Rejected
from servicedesk_runtime.database import DatabaseUrl
from servicedesk_runtime.store import ServiceStore

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def intake(tmp_path: Path) -> tuple[ServiceStore, dict[str, object]]:
    store = ServiceStore(DatabaseUrl.parse(f"sqlite:///{tmp_path}/i.db", "intake"), "intake")
    return store, Intake(ManualClock(NOW)).handlers()  # type: ignore[return-value]


def open_ticket(store: ServiceStore, handlers: dict[str, object]) -> uuid.UUID:
    request = m.SubmitTicket.create(
        producer="test",
        subject_id=uuid.uuid4(),
        occurred_at=NOW - timedelta(days=2),
        data={
            "agreement_id": uuid.uuid4(),
            "reporter_email": "anna@acme.example",
            "reporter_name": "Anna",
            "organisation": "Acme",
            "channel": "email",
            "subject": "Scanner",
            "body": "offline",
            "category": "incident",
            "impact": "one user",
            "urgency": "low",
        },
    )
    uow = store.unit_of_work()
    handlers["SubmitTicket"](request, uow)  # type: ignore[operator]
    uow.commit()
    return m.ticket_id_for_request(request.event_id)


def log(
    store: ServiceStore,
    handlers: dict[str, object],
    ticket: uuid.UUID,
    start: datetime,
    minutes: int,
    agent: str = "mette",
) -> None:
    command = m.LogTime.create(
        producer="gateway",
        subject_id=ticket,
        data={"agent": agent, "started_at": start, "duration_minutes": minutes},
    )
    uow = store.unit_of_work()
    handlers["LogTime"](command, uow)  # type: ignore[operator]
    uow.commit()


def logged_minutes(store: ServiceStore) -> list[int]:
    events = map(store.mapper.to_domain_event, store.process_recorder.select_notifications(1, 1000))
    return [e.duration_minutes for e in events if type(e).__name__ == "TimeLogged"]


def test_overlapping_time_of_one_agent_is_refused_naming_the_other_entry(
    intake: tuple[ServiceStore, dict[str, object]],
) -> None:
    store, handlers = intake
    first, second = open_ticket(store, handlers), open_ticket(store, handlers)
    morning = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    log(store, handlers, first, morning, 60)
    with pytest.raises(Rejected) as refused:
        log(store, handlers, second, morning + timedelta(minutes=30), 30)
    assert refused.value.reason == "overlapping_time"
    assert "on SD-000001" in refused.value.detail
    log(store, handlers, second, morning + timedelta(minutes=60), 30)  # back to back is fine
    log(store, handlers, second, morning + timedelta(minutes=30), 30, agent="jens")  # another agent
    assert logged_minutes(store) == [60, 30, 30]


def test_an_entry_over_midnight_is_checked_against_both_days(
    intake: tuple[ServiceStore, dict[str, object]],
) -> None:
    store, handlers = intake
    ticket = open_ticket(store, handlers)
    log(store, handlers, ticket, datetime(2026, 11, 22, 23, 30, tzinfo=UTC), 60)
    with pytest.raises(Rejected, match="already logged 2026-11-22T23:30:00"):
        log(store, handlers, ticket, datetime(2026, 11, 23, 0, 15, tzinfo=UTC), 10)


def test_time_in_the_future_is_refused(intake: tuple[ServiceStore, dict[str, object]]) -> None:
    store, handlers = intake
    ticket = open_ticket(store, handlers)
    with pytest.raises(Rejected) as refused:
        log(store, handlers, ticket, NOW + timedelta(hours=1), 30)
    assert refused.value.reason == "future_time"
    assert logged_minutes(store) == []


def timer(
    kind: type[m.Message], ticket: uuid.UUID, at: datetime, agent: str = "mette"
) -> m.Message:
    return kind.create(producer="gateway", subject_id=ticket, occurred_at=at, data={"agent": agent})  # type: ignore[no-any-return]


def test_a_timer_becomes_a_time_entry_in_whole_minutes(
    intake: tuple[ServiceStore, dict[str, object]],
) -> None:
    store, handlers = intake
    ticket, other = open_ticket(store, handlers), open_ticket(store, handlers)
    start = NOW - timedelta(hours=1)
    for command in (timer(m.StartTimer, ticket, start),):
        uow = store.unit_of_work()
        handlers["StartTimer"](command, uow)  # type: ignore[operator]
        uow.commit()
    with pytest.raises(Rejected) as refused:  # one running timer per agent
        handlers["StartTimer"](timer(m.StartTimer, other, start), store.unit_of_work())  # type: ignore[operator]
    assert refused.value.reason == "timer_running"
    assert "runs on SD-000001" in refused.value.detail
    uow = store.unit_of_work()
    handlers["StopTimer"](
        timer(m.StopTimer, ticket, start + timedelta(minutes=25, seconds=30)), uow
    )  # type: ignore[operator]
    uow.commit()
    assert logged_minutes(store) == [26]  # started minutes count whole
    events = map(store.mapper.to_domain_event, store.process_recorder.select_notifications(1, 1000))
    (logged,) = [e for e in events if type(e).__name__ == "TimeLogged"]
    assert (logged.source, logged.started_at) == ("timer", start)
    with pytest.raises(Rejected, match="no timer running"):
        handlers["StopTimer"](timer(m.StopTimer, ticket, NOW), store.unit_of_work())  # type: ignore[operator]


def assign(
    store: ServiceStore,
    handlers: dict[str, object],
    ticket: uuid.UUID,
    assignee: str | None,
    group: str | None = "first-line",
    reason: str = "",
) -> None:
    command = m.AssignTicket.create(
        producer="gateway",
        subject_id=ticket,
        occurred_at=NOW,
        data={"assignee": assignee, "group": group, "assigned_by": "lars", "reason": reason},
    )
    uow = store.unit_of_work()
    handlers["AssignTicket"](command, uow)  # type: ignore[operator]
    uow.commit()


def test_a_ticket_is_assigned_and_taken_from_its_agent_only_with_a_reason(
    intake: tuple[ServiceStore, dict[str, object]],
) -> None:
    store, handlers = intake
    ticket = open_ticket(store, handlers)
    assign(store, handlers, ticket, None)  # to the group's queue
    assign(store, handlers, ticket, "mette")
    with pytest.raises(Rejected) as no_reason:
        assign(store, handlers, ticket, "jens")
    assert no_reason.value.reason == "reason_required"
    with pytest.raises(Rejected) as same:
        assign(store, handlers, ticket, "mette")
    assert same.value.reason == "no_change"
    assign(store, handlers, ticket, "jens", "second-line", reason="firmware expert")
    stored = store.repository.get(ticket)
    assert (stored.assignee, stored.group) == ("jens", "second-line")
    moves = [e for e in store.events.get(ticket) if type(e).__name__ == "Assigned"]
    assert [(e.previous_assignee, e.assignee) for e in moves] == [
        (None, None),
        (None, "mette"),
        ("mette", "jens"),
    ]
    assert moves[-1].reason == "firmware expert"
