"""A batch asks the store once, and what it reads ahead or keeps cached is never stale.

On real SQLite and PostgreSQL: the consumer reads ahead, in one query, whether each message
of a batch was applied and which aggregates its handler reads; aggregates stay cached
between batches, but a change by another writer (a replica, the timer loop) is always
seen; a failed commit leaves nothing half-changed in the cache.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking
from eventsourcing.postgres import PostgresAggregateRecorder
from libs.runtime.tests.exactly_once_kit import Feed, Saves, request
from psycopg.sql import SQL, Identifier

from servicedesk_contracts import messages as m
from servicedesk_contracts import topics
from servicedesk_runtime import consumer as consumer_module
from servicedesk_runtime import store as store_module
from servicedesk_runtime.consumer import Handler, handles
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.store import Received, ServiceStore, UnitOfWork

COUNTER_ID = uuid.UUID("00000000-0000-4000-8000-00000000c0de")


class Tally(Aggregate):
    """One aggregate every message changes: what a reference sequence is to intake."""

    @staticmethod
    def create_id() -> uuid.UUID:  # type: ignore[override]
        return COUNTER_ID

    @event("Started")
    def __init__(self) -> None:
        self.seen: list[str] = []

    @event("Counted")
    def count(self, subject: str) -> None:
        self.seen.append(subject)


class Entry(Aggregate):
    @staticmethod
    def create_id(subject_id: uuid.UUID) -> uuid.UUID:  # type: ignore[override]
        return uuid.uuid5(COUNTER_ID, str(subject_id))

    @event("Made")
    def __init__(self, subject_id: uuid.UUID, number: int) -> None:
        self.number = number


def tally(submit: m.SubmitTicket, uow: UnitOfWork) -> None:
    if uow.get(Entry.create_id(submit.subject_id), Entry) is not None:
        return
    counter = uow.get_or_create(Tally)
    counter.count(submit.data.subject)
    uow.add(Entry(subject_id=submit.subject_id, number=len(counter.seen)))


def entry_and_tally(submit: m.SubmitTicket) -> list[uuid.UUID]:
    return [Entry.create_id(submit.subject_id), COUNTER_ID]


def with_reads() -> dict[str, Handler]:
    return dict([handles(m.SubmitTicket, tally, reads=entry_and_tally)])


def without_reads() -> dict[str, Handler]:
    return dict([handles(m.SubmitTicket, tally)])


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseUrl]:
    if request.param == "sqlite":
        yield DatabaseUrl.parse(f"sqlite:///{tmp_path}/tally.db", "tally")
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"t{uuid.uuid4().hex[:10]}"
    yield DatabaseUrl.parse(f"{base}?schema={schema}", "tally")
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def open_store(store_url: DatabaseUrl) -> Iterator[Callable[[], ServiceStore]]:
    """Opens stores on one database (each one a replica of the same service)."""
    Database(store_url).close()  # creates the schema on PostgreSQL
    opened: list[ServiceStore] = []

    def opener() -> ServiceStore:
        opened.append(ServiceStore(store_url, "tally"))
        return opened[-1]

    yield opener
    for store in opened:
        store.close()


class Queries:
    """Counts the store's round trips per kind: a spy on the real store, not a mock."""

    def __init__(self, store: ServiceStore) -> None:
        self.counts = {"select_events": 0, "versions_of": 0}
        self._wrap(store.recorder, "select_events")
        self._wrap(store, "versions_of")

    def _wrap(self, owner: Any, name: str) -> None:
        real = getattr(owner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.counts[name] += 1
            return real(*args, **kwargs)

        setattr(owner, name, counted)


def stored(store: ServiceStore) -> list[str]:
    """The topics of every stored event, in log order."""
    return [n.topic for n in store.process_recorder.select_notifications(1, 100_000)]


def tally_of(store: ServiceStore) -> list[str]:
    counter = store.repository.get(COUNTER_ID)
    assert isinstance(counter, Tally)
    return counter.seen


async def test_a_batch_reads_ahead_in_one_query(open_store: Callable[[], ServiceStore]) -> None:
    store = open_store()
    queries = Queries(store)
    feed = Feed(store, with_reads(), topics.INBOUND)
    batch = [request(f"n{i}") for i in range(30)]
    await feed.deliver(batch)
    assert queries.counts == {"select_events": 0, "versions_of": 1}
    # The same messages again at later offsets (a relay republishing): recognised from
    # one query again, applied no second time.
    await feed.deliver(batch)
    assert queries.counts == {"select_events": 0, "versions_of": 2}
    assert tally_of(store) == [f"n{i}" for i in range(30)]


async def test_without_reads_each_message_asks_on_its_own(
    open_store: Callable[[], ServiceStore],
) -> None:
    """The contrast that makes the read-ahead worth having: the same batch asks the store
    for each entry one by one when its handler names nothing to read ahead."""
    store = open_store()
    queries = Queries(store)
    await Feed(store, without_reads(), topics.INBOUND).deliver(
        [request(f"n{i}") for i in range(30)]
    )
    assert tally_of(store) == [f"n{i}" for i in range(30)]
    assert queries.counts["select_events"] >= 30


@pytest.mark.parametrize("handlers", [with_reads, without_reads], ids=["read-ahead", "asked"])
async def test_a_change_by_another_replica_is_seen_through_the_cache(
    open_store: Callable[[], ServiceStore], handlers: Callable[[], dict[str, Handler]]
) -> None:
    first, second = open_store(), open_store()
    # Two replicas, each consuming its own partition, both changing the one tally.
    one = Feed(first, handlers(), topics.INBOUND, partition=0)
    other = Feed(second, handlers(), topics.INBOUND, partition=1)
    await one.deliver([request("a")])  # `first` keeps the tally cached at "a"
    await other.deliver([request("b")])  # the other replica counts on from the store
    saves = Saves(first)
    await one.deliver([request("c")])  # must count on from "b", not from its cached copy
    assert tally_of(first) == ["a", "b", "c"]
    assert saves.count == 1  # right the first time: no conflict with a stale copy, no retry


def test_a_failed_commit_leaves_no_half_changed_copy_cached(
    open_store: Callable[[], ServiceStore],
) -> None:
    first, second = open_store(), open_store()
    uow = first.unit_of_work()
    uow.get_or_create(Tally).count("a")
    uow.commit()  # cached by `first` at "a"
    racing = second.unit_of_work()
    racing.get_or_create(Tally).count("b")  # the other replica wins the race...
    losing = first.unit_of_work()
    losing.get_or_create(Tally).count("lost")
    racing.commit()
    with pytest.raises(IntegrityError):
        losing.commit()  # ...and this one conflicts
    retry = first.unit_of_work()
    counter = retry.get(COUNTER_ID, Tally)
    assert counter is not None
    assert counter.seen == ["a", "b"]  # as stored: "lost" was never cached


async def test_a_command_applied_twice_in_one_batch_is_applied_once(
    open_store: Callable[[], ServiceStore],
) -> None:
    store = open_store()
    feed = Feed(store, with_reads(), topics.INBOUND)
    command = request("once")
    await feed.deliver([command, command])  # twice in one batch
    await feed.deliver([command])  # and again in the next
    kinds = [topic.split(":")[1].split(".")[0] for topic in stored(store)]
    assert kinds.count("CommandOutcome") == 1
    assert kinds.count("Received") == 0  # the outcome stands in for the marker
    assert tally_of(store) == ["once"]


async def test_an_event_is_marked_received(open_store: Callable[[], ServiceStore]) -> None:
    store = open_store()
    feed = Feed(store, with_reads(), topics.TICKETS)
    message = request("event")
    await feed.deliver([message])
    await feed.deliver([message])
    kinds = [topic.split(":")[1].split(".")[0] for topic in stored(store)]
    assert kinds.count("Received") == 1
    assert "CommandOutcome" not in kinds
    assert tally_of(store) == ["event"]


def test_events_keep_every_byte_of_their_state(open_store: Callable[[], ServiceStore]) -> None:
    """The columnar insert on PostgreSQL (and SQLite's) store any bytes and topic text."""
    store = open_store()
    aggregate_id = uuid.uuid4()
    written = [
        StoredEvent(aggregate_id, 1, "módulo:Ænd.Ø", bytes(range(256))),
        StoredEvent(aggregate_id, 2, "x" * 300, b"\x00\\\"'{}" * 1000),
    ]
    store.process_recorder.insert_events(written)
    assert list(store.recorder.select_events(aggregate_id)) == written


async def test_markers_stored_by_older_versions_still_count(
    open_store: Callable[[], ServiceStore],
) -> None:
    """Markers once carried the message's `event_id` in their state; a store holding such
    a marker still skips the message, and the marker still loads."""
    store = open_store()
    message = request("before the upgrade")
    marker_id = Received.id_for(message.event_id)
    old_state = (
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2026-11-01T09:00:00+00:00"},'
        '"originator_topic":"servicedesk_runtime.store:Received",'
        f'"event_id":{{"_type_":"uuid_hex","_data_":"{message.event_id.hex}"}}}}'
    ).encode()
    store.process_recorder.insert_events(
        [StoredEvent(marker_id, 1, "servicedesk_runtime.store:Received.Applied", old_state)]
    )
    await Feed(store, with_reads(), topics.TICKETS).deliver([message])
    assert COUNTER_ID not in {
        n.originator_id for n in store.process_recorder.select_notifications(1, 100)
    }
    assert isinstance(store.repository.get(marker_id), Received)
    new_marker = Received.of(uuid.uuid4()).collect_events()[0]
    assert b"event_id" not in store.mapper.to_stored_event(new_marker).state


async def test_a_batch_of_types_the_service_does_not_handle_opens_no_unit_of_work(
    open_store: Callable[[], ServiceStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read past on their headers alone, without a worker thread or a transaction, once
    the partition's position was recorded within the second; it is recorded when that
    second is up."""
    store = open_store()
    opened: list[UnitOfWork] = []
    make = store.unit_of_work
    monkeypatch.setattr(store, "unit_of_work", lambda: opened.append(make()) or opened[-1])
    feed = Feed(store, {}, topics.TICKETS)  # handles nothing
    tracking = feed.consumer.tracking_name(feed.tp)
    await feed.deliver([request(f"n{i}") for i in range(3)])
    assert (len(opened), store.position(tracking)) == (1, 3)  # the first: recorded at once
    await feed.deliver([request(f"n{i}") for i in range(3, 6)])
    assert (len(opened), store.position(tracking)) == (1, 3)  # within its second: none
    monkeypatch.setattr(consumer_module, "RECORD_IDLE_POSITION_EVERY", 0)
    await feed.consumer._record_unrecorded_positions()
    assert store.position(tracking) == 6


def tally_with_events(store: ServiceStore, count: int) -> None:
    uow = store.unit_of_work()
    counter = uow.get_or_create(Tally)
    for number in range(count - 1):
        counter.count(f"n{number}")
    uow.commit()


def rows_read_for_versions(store: ServiceStore, ids: list[uuid.UUID]) -> int:
    """What the engine reads to answer `versions_of(ids)`: rows its plan takes from the
    events table (PostgreSQL's EXPLAIN ANALYZE) or virtual-machine steps (SQLite)."""
    recorder: Any = store.recorder
    table = recorder.events_table_name
    conninfo = store.url.conninfo()
    if conninfo:
        schema = recorder.datastore.schema
        statement = store_module.postgres_versions_query(schema, table)
        with psycopg.connect(conninfo) as connection:
            explain = SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + statement
            (plan,) = connection.execute(explain, (ids,)).fetchone()  # type: ignore[misc]
        return _rows_from(plan[0]["Plan"], table)
    steps = 0

    def count_step() -> int:
        nonlocal steps
        steps += 1
        return 0

    with closing(sqlite3.connect(store.url.sqlite_path)) as connection:
        connection.set_progress_handler(count_step, 1)
        connection.execute(
            store_module.sqlite_versions_query(table, len(ids)), [i.hex for i in ids]
        ).fetchall()
    return steps


def _rows_from(node: dict[str, Any], table: str) -> int:
    own = node["Actual Rows"] * node["Actual Loops"] if node.get("Relation Name") == table else 0
    return own + sum(_rows_from(child, table) for child in node.get("Plans", []))


def test_asking_for_versions_does_not_grow_with_an_aggregates_history(
    open_store: Callable[[], ServiceStore],
) -> None:
    """The read-ahead asks every batch for the version of aggregates such as intake's
    reference sequence, which gains an event per ticket: the answer must cost the same
    with 3 or 3,000 events behind it (a GROUP BY read them all)."""
    store = open_store()
    absent = uuid.uuid4()
    tally_with_events(store, 3)
    assert store.versions_of([COUNTER_ID, absent]) == {COUNTER_ID: 3}
    few = rows_read_for_versions(store, [COUNTER_ID, absent])
    tally_with_events(store, 3000)
    assert store.versions_of([COUNTER_ID, absent]) == {COUNTER_ID: 3002}
    many = rows_read_for_versions(store, [COUNTER_ID, absent])
    assert many <= few + 2, (few, many)


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)  # SQLite's is plain text
def test_a_batch_composes_no_sql_on_postgres(
    open_store: Callable[[], ServiceStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statements of a read-ahead and a commit (the table lock, the NOTIFY, the insert)
    are composed once per store: psycopg composes an SQL object at every execute, quoting
    each identifier, and that was 5 % of a service's CPU."""
    store = open_store()
    assert isinstance(store.recorder, PostgresAggregateRecorder)
    first = store.unit_of_work()
    first.prefetch([uuid.uuid4()], [COUNTER_ID])
    first.add(Tally())
    first.commit(Tracking("inbound:0", 1))  # a store's first batch may compose what it keeps
    quoted: list[str] = []
    real = Identifier.as_bytes

    def counted(self: Identifier, context: Any = None) -> bytes:
        quoted.append(str(self))
        return real(self, context)

    monkeypatch.setattr(Identifier, "as_bytes", counted)
    batch = store.unit_of_work()
    batch.prefetch([uuid.uuid4()], [COUNTER_ID])
    tally = batch.get(COUNTER_ID, Tally)
    assert tally is not None
    tally.count("again")
    batch.commit(Tracking("inbound:0", 2))

    assert quoted == []
    assert tally_of(store) == ["again"]
