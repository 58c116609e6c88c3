"""A month's ledger gains an event per time entry; it is snapshotted every
`MonthLedger.SNAPSHOT_EVERY` events, so a restarted billing reads a snapshot and a
bounded tail instead of the whole month, and issues the same statement it would have
issued from every event. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from servicedesk_billing.application import Billing
from servicedesk_billing.domain import MonthLedger
from servicedesk_contracts import Message
from servicedesk_contracts import messages as m
from servicedesk_runtime.clock import ManualClock
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.store import ServiceStore

AGREEMENT = uuid.UUID("00000000-0000-4000-8000-0000000000e2")
NOVEMBER = MonthLedger.create_id(AGREEMENT, "2026-11")
LATER = datetime(2027, 1, 15, 9, 0, tzinfo=UTC)
EVERY = 10


@pytest.fixture(autouse=True)
def small_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MonthLedger, "SNAPSHOT_EVERY", EVERY)


@pytest.fixture
def database_url(database_url: str) -> str:
    """A fresh database (the root conftest's), its PostgreSQL schema made."""
    Database(DatabaseUrl.parse(database_url, "billing")).close()
    return database_url


def open_store(url: str) -> ServiceStore:
    return ServiceStore(DatabaseUrl.parse(url, "billing"), "billing")


def register() -> Message:
    data = {"customer": "Many Hours BV", "plan": "R Medium", "billing": {"hourly_rate_cents": 9000}}
    command: Message = m.RegisterPlanAgreement.create(
        producer="crm", subject_id=AGREEMENT, data=data
    )
    return command


def entry(n: int, day: int = 2) -> Message:
    ticket = uuid.uuid5(AGREEMENT, f"ticket:{n % 3}")
    logged: Message = m.TimeLogged.create(
        producer="intake",
        subject_id=ticket,
        data={
            "agent": "mette",
            "started_at": datetime(2026, 11, day, 9, 0, tzinfo=UTC) + timedelta(minutes=n),
            "duration_minutes": 5 + n,
            "work_type": "support",
            "billable": n % 7 != 0,
            "entry_id": uuid.uuid5(ticket, f"entry:{n}"),
            "reference": f"SD-{n % 3 + 1:06d}",
            "agreement_id": AGREEMENT,
            "category": "incident",
        },
    )
    return logged


def issue_november() -> Message:
    command: Message = m.IssueStatement.create(
        producer="crm", subject_id=AGREEMENT, data={"month": "2026-11"}
    )
    return command


def apply(store: ServiceStore, messages: list[Message], per_unit_of_work: int = 4) -> None:
    """In units of work of a few messages, as the consumer applies a batch."""
    handlers = Billing(ManualClock(LATER)).handlers()
    for first in range(0, len(messages), per_unit_of_work):
        uow = store.unit_of_work()
        for message in messages[first : first + per_unit_of_work]:
            handlers[message.event_type](message, uow)
            uow.mark_applied(message.event_id)
        uow.commit()


def november_statement(store: ServiceStore) -> dict[str, Any]:
    for notification in store.process_recorder.select_notifications(1, 100_000):
        event = store.mapper.to_domain_event(notification)
        if isinstance(event, MonthLedger.StatementIssued):
            return dict(event.statement)
    raise AssertionError("no statement issued")


def latest_snapshot(store: ServiceStore, aggregate_id: uuid.UUID) -> int | None:
    assert store.snapshots is not None
    found = store.snapshots.recorder.select_events(aggregate_id, desc=True, limit=1)
    return found[0].originator_version if found else None


@contextmanager
def counting_events_read(store: ServiceStore, aggregate_id: uuid.UUID) -> Iterator[list[int]]:
    """How many stored events of `aggregate_id` are read meanwhile (snapshots aside)."""
    select = store.recorder.select_events
    read: list[int] = []

    def counting(originator_id: uuid.UUID, *args: Any, **kwargs: Any) -> Any:
        rows = select(originator_id, *args, **kwargs)
        if originator_id == aggregate_id:
            read.append(len(rows))
        return rows

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store.recorder, "select_events", counting)
        yield read


def test_a_restarted_billing_issues_from_the_snapshot_the_statement_of_every_event(
    database_url: str, tmp_path: Path
) -> None:
    history = [register(), *(entry(n) for n in range(45))]
    store = open_store(database_url)
    apply(store, history)
    # Opened is version 1, entry n version n + 2: the last multiple of EVERY was taken.
    assert latest_snapshot(store, NOVEMBER) == 4 * EVERY
    store.close()

    restarted = open_store(database_url)
    with counting_events_read(restarted, NOVEMBER) as read:
        apply(restarted, [issue_november()])
    assert read == [46 - 4 * EVERY]  # the events after the snapshot, not all 46
    issued = november_statement(restarted)
    restarted.close()

    without_snapshots = open_store(f"sqlite:///{tmp_path / 'replayed.db'}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MonthLedger, "SNAPSHOT_EVERY", 1_000_000)
        apply(without_snapshots, [*history, issue_november()], per_unit_of_work=100)
    assert latest_snapshot(without_snapshots, NOVEMBER) is None
    assert november_statement(without_snapshots) == issued
    without_snapshots.close()


def test_a_late_entry_after_a_restart_reads_the_issued_ledger_from_its_snapshot(
    database_url: str,
) -> None:
    store = open_store(database_url)
    apply(store, [register(), *(entry(n) for n in range(12)), issue_november()])
    store.close()
    restarted = open_store(database_url)
    with counting_events_read(restarted, NOVEMBER) as read:
        apply(restarted, [entry(99, day=20)])  # worked in November, logged after its statement
    assert read == [14 - EVERY]  # entries 9-11 and the statement, after the snapshot
    uow = restarted.unit_of_work()
    december = uow.get(MonthLedger.create_id(AGREEMENT, "2026-12"), MonthLedger)
    assert december is not None
    assert [e.reference for e in december.statement_entries()[1]] == ["SD-000001"]
    restarted.close()
