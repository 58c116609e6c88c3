"""The due-time table: durable, rebuildable from the clock events, and shared safely by
replicas (FOR UPDATE SKIP LOCKED on PostgreSQL). Real SQLite files and real PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from servicedesk_contracts import messages as m
from servicedesk_contracts.messages import Calendar
from servicedesk_runtime.clock import ManualClock, SystemClock
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.metrics import SLA_BREACHES
from servicedesk_runtime.store import ServiceStore
from servicedesk_sla_timer.application import SlaTimer
from servicedesk_sla_timer.domain import RESPONSE, SlaClock
from servicedesk_sla_timer.due_timers import DueTimers
from servicedesk_stack.waiting import eventually

pytestmark = pytest.mark.integration
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseUrl]:
    if request.param == "sqlite":
        yield DatabaseUrl.parse(f"sqlite:///{tmp_path / 'sla.db'}", "sla-timer")
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"t{uuid.uuid4().hex[:8]}_sla"
    yield DatabaseUrl.parse(f"{base}?schema={schema}", "sla-timer")
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


class Replica:
    """One sla-timer process's store, due table and timer on a shared database."""

    def __init__(self, url: DatabaseUrl, clock: ManualClock) -> None:
        self.database = Database(url)
        self.store = ServiceStore(url, "sla-timer")
        self.due = DueTimers(self.database, self.store)
        self.timer = SlaTimer(self.store, self.due, clock)

    def close(self) -> None:
        self.store.close()
        self.database.close()


ALWAYS_OPEN = Calendar(timezone="UTC", always_open=True)


def start_clocks(
    store: ServiceStore, count: int, minutes: int = 30, warnings: tuple[float, ...] = ()
) -> list[uuid.UUID]:
    """Clock n opens n minutes after START with a target of `minutes` (24x7)."""
    uow = store.unit_of_work()
    ids = []
    for n in range(count):
        clock = SlaClock(ticket_id=uuid.uuid4(), kind=RESPONSE)
        clock.note_triage(f"SD-{n:06d}", "P2", START + timedelta(minutes=n), uuid.uuid4())
        clock.start(ALWAYS_OPEN, {"P2": minutes}, ["awaiting_reply"], list(warnings))
        uow.add(clock)
        ids.append(clock.id)
    uow.commit()
    return ids


def recorded(store: ServiceStore, kind: type) -> list[uuid.UUID]:
    notifications = store.process_recorder.select_notifications(1, 1_000_000)
    events = [store.mapper.to_domain_event(n) for n in notifications]
    return [e.originator_id for e in events if isinstance(e, kind)]


def breached_events(store: ServiceStore) -> list[uuid.UUID]:
    return recorded(store, SlaClock.Breached)


def test_timers_fire_once_at_their_deadline_and_survive_a_restart(
    database_url: DatabaseUrl,
) -> None:
    clock = ManualClock(START)
    first = Replica(database_url, clock)
    ids = start_clocks(first.store, 3)
    assert first.timer.fire_due_timers() == 0
    first.close()  # the service stops; its timers wait in the table

    clock.set(START + timedelta(minutes=31, seconds=1))  # past the first two deadlines
    restarted = Replica(database_url, clock)
    assert restarted.timer.fire_due_timers() == 2
    assert restarted.timer.fire_due_timers() == 0  # a breach is a fact, recorded once
    assert sorted(breached_events(restarted.store)) == sorted(ids[:2])
    assert restarted.due.open_count() == 1
    restarted.close()


def test_a_stopped_clock_leaves_the_table_and_never_breaches(database_url: DatabaseUrl) -> None:
    clock = ManualClock(START)
    replica = Replica(database_url, clock)
    (clock_id,) = start_clocks(replica.store, 1)
    uow = replica.store.unit_of_work()
    answered = uow.get(clock_id, SlaClock)
    assert answered is not None
    answered.observe_reply(START + timedelta(minutes=5))
    uow.commit()
    clock.set(START + timedelta(hours=2))
    assert replica.timer.fire_due_timers() == 0
    assert replica.due.open_count() == 0
    assert answered.met is True
    replica.close()


def test_the_table_can_be_dropped_and_rebuilt_from_the_events(database_url: DatabaseUrl) -> None:
    replica = Replica(database_url, ManualClock(START))
    start_clocks(replica.store, 5)
    replica.due.catch_up()
    before = replica.due.open_count(), replica.due.next_due()
    with replica.database.transaction() as cursor:
        cursor.execute(f"DROP TABLE {replica.due.timers}")
        cursor.execute(f"DROP TABLE {replica.due.positions}")
    rebuilt = DueTimers(replica.database, replica.store)
    assert rebuilt.open_count() == 0
    while rebuilt.catch_up():
        pass
    assert (
        (rebuilt.open_count(), rebuilt.next_due()) == before == (5, START + timedelta(minutes=30))
    )
    replica.close()


def test_a_garbled_index_is_rebuilt_in_place_with_its_progress_told(
    database_url: DatabaseUrl,
) -> None:
    replica = Replica(database_url, ManualClock(START))
    start_clocks(replica.store, 5)
    replica.due.catch_up()
    before = replica.due.open_count(), replica.due.next_due()
    with replica.database.transaction() as cursor:  # an operator's mistake, a lost row
        cursor.execute(f"DELETE FROM {replica.due.timers} WHERE timer = 'breach'")
        cursor.execute(
            f"INSERT INTO {replica.due.timers} (clock_id, timer, due_ms) VALUES (?, ?, ?)",
            (str(uuid.uuid4()), "breach", 0),
        )
    assert (replica.due.open_count(), replica.due.next_due()) != before
    told: list[tuple[int, int]] = []
    read = replica.due.rebuild(lambda done, total: told.append((done, total)))
    assert (replica.due.open_count(), replica.due.next_due()) == before
    assert read == told[-1][0] == told[-1][1] > 0  # every event of the log, and said so
    replica.close()


def test_warnings_fire_before_the_breach_and_pauses_hold_every_timer(
    database_url: DatabaseUrl,
) -> None:
    clock = ManualClock(START)
    replica = Replica(database_url, clock)
    warned, paused = start_clocks(replica.store, 2, minutes=60, warnings=(0.75,))
    uow = replica.store.unit_of_work()
    waiting = uow.get(paused, SlaClock)
    assert waiting is not None
    waiting.observe_status("open", "awaiting_reply", START + timedelta(minutes=10))
    uow.commit()
    clock.set(START + timedelta(minutes=45))  # 75 % of the first clock's hour
    assert replica.timer.fire_due_timers() == 1
    assert recorded(replica.store, SlaClock.Warned) == [warned]
    clock.set(START + timedelta(hours=5))
    assert replica.timer.fire_due_timers() == 1  # the first breaches; the paused one waits
    assert breached_events(replica.store) == [warned]
    assert replica.due.open_count() == 0
    replica.close()


def test_a_backdated_clock_fires_in_threshold_order_each_at_its_instant(
    database_url: DatabaseUrl,
) -> None:
    # Requests of 09:00 and 09:01 (60-minute targets) reach the timer at 12:00: every timer is
    # overdue at once, and each is recorded as of when it fell due.
    noticed = START + timedelta(hours=3)
    replica = Replica(database_url, ManualClock(noticed))
    first, second = start_clocks(replica.store, 2, minutes=60, warnings=(0.9, 0.75))
    assert replica.timer.fire_due_timers() == 6
    notifications = replica.store.process_recorder.select_notifications(1, 1000)
    events = [replica.store.mapper.to_domain_event(n) for n in notifications]
    for n, clock_id in enumerate((first, second)):
        fired = [e for e in events if e.originator_id == clock_id and hasattr(e, "noticed_at")]
        opened = START + timedelta(minutes=n)
        assert [(type(e).__name__, e.due_at) for e in fired] == [
            ("Warned", opened + timedelta(minutes=60))
        ] * 2 + [("Breached", opened + timedelta(minutes=60))]
        assert [e.warned_at for e in fired[:2]] == [
            opened + timedelta(minutes=45),
            opened + timedelta(minutes=54),
        ]
        assert fired[2].breached_at == opened + timedelta(minutes=60)
        assert {e.noticed_at for e in fired} == {noticed}
    assert replica.timer.fire_due_timers() == 0
    assert replica.due.open_count() == 0
    replica.close()


# Replicas share a PostgreSQL database; SQLite is the single-process default.
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_replicas_never_fire_the_same_timer(database_url: DatabaseUrl) -> None:
    clock = ManualClock(START)
    replicas = [Replica(database_url, clock) for _ in range(2)]
    ids = start_clocks(replicas[0].store, 200)
    clock.set(START + timedelta(days=1))
    fired = [0, 0]

    def fire(index: int) -> None:
        while True:
            try:
                breached = replicas[index].timer.fire_due_timers()
            except IntegrityError:
                continue  # the other replica changed the same clock first: try again
            if not breached and replicas[index].due.open_count() == 0:
                return
            fired[index] += breached

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    breached = breached_events(replicas[0].store)
    assert sorted(breached) == sorted(ids)  # every clock breached, none twice
    assert sum(fired) == 200
    for replica in replicas:
        replica.close()


def test_a_timer_is_never_claimed_before_its_exact_instant_and_never_lost(
    database_url: DatabaseUrl,
) -> None:
    clock = ManualClock(START)
    replica = Replica(database_url, clock)
    uow = replica.store.unit_of_work()
    made = SlaClock(ticket_id=uuid.uuid4(), kind=RESPONSE)
    opened = START + timedelta(microseconds=500)  # due 0.5 ms after a whole millisecond
    made.note_triage("SD-000001", "P2", opened, uuid.uuid4())
    made.start(ALWAYS_OPEN, {"P2": 1}, [], [])
    uow.add(made)
    uow.commit()
    clock.set(opened + timedelta(minutes=1) - timedelta(microseconds=400))  # just before
    assert replica.timer.fire_due_timers() == 0
    clock.set(opened + timedelta(minutes=1))
    assert replica.timer.fire_due_timers() == 1
    assert breached_events(replica.store) == [made.id]
    replica.close()


def test_a_pause_after_an_unnoticed_deadline_records_and_counts_the_breach(
    database_url: DatabaseUrl,
) -> None:
    replica = Replica(database_url, ManualClock(START))
    (clock_id,) = start_clocks(replica.store, 1, minutes=60)
    breaches = SLA_BREACHES.labels(RESPONSE, "P2")
    before = breaches._value.get()
    changed = m.TicketStatusChanged.create(
        producer="intake",
        subject_id=replica.store.repository.get(clock_id).ticket_id,
        data={
            "reference": "SD-000000",
            "from_status": "open",
            "to_status": "awaiting_reply",
            "changed_by": "mette",
            "changed_at": START + timedelta(hours=2),  # the timer loop never saw 10:00
        },
    )
    uow = replica.store.unit_of_work()
    replica.timer.follow_status(changed, uow)
    uow.commit()
    (breach,) = [e for e in events_of(replica.store, clock_id) if isinstance(e, SlaClock.Breached)]
    assert (breach.breached_at, breach.noticed_at) == (
        START + timedelta(hours=1),
        START + timedelta(hours=2),
    )
    assert breaches._value.get() == before + 1
    replica.close()


def events_of(store: ServiceStore, clock_id: uuid.UUID) -> list[Any]:
    notifications = store.process_recorder.select_notifications(1, 1000)
    events = [store.mapper.to_domain_event(n) for n in notifications]
    return [e for e in events if e.originator_id == clock_id]


async def test_the_timer_loop_sleeps_until_a_timer_falls_due_or_clocks_are_stored(
    database_url: DatabaseUrl,
) -> None:
    """No polling: with a look every minute at the most, a clock stored now (the consumer
    says so) is indexed at once and breaches on time, seconds later, on the real clock."""
    replica = Replica(database_url, ManualClock(START))
    replica.timer.clock = SystemClock()
    stop = asyncio.Event()
    fired: list[int] = []
    loop = asyncio.create_task(replica.timer.timer_loop(60, lambda: fired.append(1))(stop))
    try:
        await asyncio.sleep(0)  # the loop's first look: nothing is due
        uow = replica.store.unit_of_work()
        clock = SlaClock(ticket_id=uuid.uuid4(), kind=RESPONSE)
        clock.note_triage("SD-000001", "P1", datetime.now(UTC), uuid.uuid4())
        clock.start(ALWAYS_OPEN, {"P1": 2 / 60}, ["awaiting_reply"], [])  # two seconds
        uow.add(clock)
        uow.commit()
        replica.timer.clocks_changed()
        # The loop says it fired once the breach is committed; a look at the store alone
        # could see the commit before the loop is back from its thread to say so.
        await eventually(lambda: fired, timeout=30, what="the loop to say it fired")
        assert breached_events(replica.store) == [clock.id]
    finally:
        stop.set()
        await asyncio.wait_for(loop, timeout=10)
        replica.close()


class Decodings:
    """Counts the events the store decodes (a spy on the real mapper)."""

    def __init__(self, store: ServiceStore) -> None:
        self.count = 0
        real = store.mapper.to_domain_event

        def counted(*args: Any) -> Any:
            self.count += 1
            return real(*args)

        store.mapper.to_domain_event = counted  # type: ignore[method-assign]


def index_rows(replica: Replica) -> list[tuple[Any, ...]]:
    with replica.database.reading() as cursor:
        cursor.execute(f"SELECT clock_id, timer, due_ms FROM {replica.due.timers} ORDER BY 1, 2")
        return [tuple(row) for row in cursor.fetchall()]


def test_clocks_this_process_committed_are_indexed_from_its_cache_as_from_the_log(
    database_url: DatabaseUrl,
) -> None:
    here = Replica(database_url, ManualClock(START))
    ids = start_clocks(here.store, 6, warnings=(0.5, 0.75))
    uow = here.store.unit_of_work()
    answered = uow.get(ids[0], SlaClock)
    assert answered is not None
    answered.observe_reply(START + timedelta(minutes=5))
    uow.commit()
    decoded = Decodings(here.store)
    here.due.catch_up()
    assert decoded.count == 0
    from_cache = index_rows(here)
    assert len(from_cache) == 5 * 3  # the answered clock has no timers left

    # A process that committed none of it indexes the same log by decoding it.
    elsewhere = Replica(database_url, ManualClock(START))
    elsewhere.due.rebuild()
    assert index_rows(elsewhere) == from_cache

    # A clock changed by another replica is not read from this one's stale copy.
    uow = elsewhere.store.unit_of_work()
    stopped = uow.get(ids[1], SlaClock)
    assert stopped is not None
    stopped.observe_reply(START + timedelta(minutes=6))
    uow.commit()
    here.due.catch_up()
    assert decoded.count > 0
    assert {row[0] for row in index_rows(here)} == {str(i) for i in ids[2:]}
    here.close()
    elsewhere.close()
