"""The exactly-once core on real parts: the Tansu broker, SQLite and PostgreSQL.

Every message a consumer cannot apply is dead-lettered with its reason and the partition
goes on; types it does not use are read past; a dropped database connection is waited out
without losing or doubling anything; a position recorded by someone else is never retried.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from eventsourcing.persistence import Tracking
from libs.runtime.tests.exactly_once_kit import (
    CRASH,
    REFUSE,
    UNSTORABLE,
    Feed,
    Saves,
    header,
    note_handlers,
    notes,
    read_topic,
    record,
    request,
    terminate_backends,
)

from servicedesk_contracts import topics
from servicedesk_runtime import consumer as consumer_module
from servicedesk_runtime.consumer import FetchPacing, TrackedConsumer
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.kafka import ensure_topics
from servicedesk_runtime.store import CommandOutcome, Received, ServiceStore
from servicedesk_runtime.tansu import EmbeddedBroker
from servicedesk_stack.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseUrl]:
    if request.param == "sqlite":
        yield DatabaseUrl.parse(f"sqlite:///{tmp_path}/notes.db", "notes")
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"t{uuid.uuid4().hex[:10]}"
    yield DatabaseUrl.parse(f"{base}?schema={schema}", "notes")
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def store(store_url: DatabaseUrl) -> Iterator[ServiceStore]:
    Database(store_url).close()  # creates the schema on PostgreSQL
    service_store = ServiceStore(store_url, "notes")
    yield service_store
    service_store.close()


@pytest.fixture
async def broker() -> AsyncIterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        await ensure_topics(running.bootstrap)
        yield running


@pytest.fixture
async def producer(broker: EmbeddedBroker) -> AsyncIterator[AIOKafkaProducer]:
    # Up to 4 MB, so that a message over the 1 MB default can be put on the topic.
    kafka = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, max_request_size=4 * 2**20)
    await kafka.start()
    yield kafka
    await kafka.stop()


class Running:
    """A TrackedConsumer of the note service, running until the test ends."""

    def __init__(self, consumer: TrackedConsumer, task: asyncio.Task[None]) -> None:
        self.consumer = consumer
        self.task = task

    def alive(self) -> bool:
        """True while consuming; a consumer that died fails the test with its error."""
        if self.task.done():
            raise AssertionError(f"the consumer stopped: {self.task.exception()!r}")
        return True


PACING = FetchPacing(busy_ms=40, idle_ms=700)
"""Not the defaults: the pace test sees that a consumer keeps to what it was given."""


@pytest.fixture
async def running(
    broker: EmbeddedBroker, store: ServiceStore, producer: AIOKafkaProducer
) -> AsyncIterator[Running]:
    stop = asyncio.Event()
    consumer = TrackedConsumer(
        service=f"notes-{uuid.uuid4().hex[:6]}",
        bootstrap=broker.bootstrap,
        topics=[topics.INBOUND, topics.TICKETS],
        handlers=note_handlers(),
        store=store,
        producer=producer,
        incarnation=broker.cluster_id,
        session_timeout_ms=2000,
        pacing=PACING,
    )
    task = asyncio.create_task(consumer.run(stop))
    yield Running(consumer, task)
    stop.set()
    await asyncio.wait_for(task, timeout=30)


async def send(
    producer: AIOKafkaProducer, value: bytes, topic: str = topics.INBOUND, **kw: object
) -> None:
    await producer.send_and_wait(topic, value=value, partition=0, **kw)  # type: ignore[arg-type]


async def test_every_poison_message_is_dead_lettered_and_the_partition_goes_on(
    running: Running, producer: AIOKafkaProducer, broker: EmbeddedBroker, store: ServiceStore
) -> None:
    before = request("before")
    unknown_command = json.loads(request().to_json())
    unknown_command["event_type"] = "ExplodeTicket"
    oversize = b'{"body": "' + b"x" * (1_200_000) + b'"}'
    poisons = {
        b"[" * 50_000: "invalid_json",
        b'{"event_id": ' + b"7" * 5000 + b"}": "invalid_json",
        b"\xff\xfe\x00garbage": "invalid_json",
        b'"just a string"': "invalid_json",
        oversize: "too_large",
        json.dumps(unknown_command).encode(): "unknown_type",
        request(CRASH).to_json(): "handler_error",
        request(REFUSE).to_json(): "refused_for_test",
        request(UNSTORABLE).to_json(): "store_refused",
    }
    after = request("after")
    await send(producer, before.to_json())
    for value in poisons:
        await send(producer, value)
    await send(producer, after.to_json())

    written = await eventually(
        lambda: running.alive() and notes(store).keys() >= {before.subject_id, after.subject_id},
        what="both notes",
    )
    assert written
    assert len(notes(store)) == 2  # nothing of the poison was stored
    letters = await read_topic(broker.bootstrap, topics.DEAD_LETTER, len(poisons))
    assert sorted(header(r, "error_reason") or "" for r in letters) == sorted(poisons.values())
    crash = next(r for r in letters if header(r, "error_reason") == "handler_error")
    assert "RuntimeError: a bug in the handler" in (header(crash, "error_detail") or "")
    large = next(r for r in letters if header(r, "error_reason") == "too_large")
    assert header(large, "value_truncated_from_bytes") == str(len(oversize))
    assert all(header(r, "source_topic") == topics.INBOUND for r in letters)
    assert running.consumer.ready


async def test_types_a_service_does_not_use_are_read_past_on_event_topics(
    running: Running, producer: AIOKafkaProducer, broker: EmbeddedBroker, store: ServiceStore
) -> None:
    newer = json.loads(request("newer version").to_json())
    newer["schema_version"] = 2
    newer["data"]["field_of_version_2"] = [1, 2, 3]
    unknown = {**newer, "event_type": "TicketTeleported", "schema_version": 1}
    last = request("last")
    await send(producer, json.dumps(unknown).encode(), topics.TICKETS)  # no header
    await send(
        producer, b"not even json", topics.TICKETS, headers=[("event_type", b"TicketTeleported")]
    )
    await send(producer, json.dumps(newer).encode(), topics.TICKETS)
    await send(producer, last.to_json(), topics.TICKETS)

    await eventually(lambda: len(notes(store)) == 2, what="the newer version and the last")
    assert set(notes(store)) == {uuid.UUID(newer["subject_id"]), last.subject_id}
    # Nothing of that was dead-lettered (the unknown types are another service's
    # business); garbage on an event topic still is.
    await send(producer, b"[]", topics.TICKETS)
    letters = await read_topic(broker.bootstrap, topics.DEAD_LETTER, 1)
    assert [header(r, "error_reason") for r in letters] == ["invalid_json"]


async def test_the_same_message_twice_changes_nothing_the_second_time(
    running: Running, producer: AIOKafkaProducer, store: ServiceStore, broker: EmbeddedBroker
) -> None:
    twice, refused_twice = request("twice"), request(REFUSE)
    for message in (twice, twice, refused_twice, refused_twice):
        await send(producer, message.to_json())
    marker = request("marker")
    await send(producer, marker.to_json())
    await eventually(lambda: marker.subject_id in notes(store), what="the marker")
    assert notes(store)[twice.subject_id] == 1
    # A refusal is decided once too: its redelivery is a duplicate, not a second letter.
    letters = await read_topic(broker.bootstrap, topics.DEAD_LETTER, 1)
    assert [header(r, "error_reason") for r in letters] == ["refused_for_test"]


async def test_a_dropped_database_connection_loses_and_doubles_nothing(
    broker: EmbeddedBroker,
    producer: AIOKafkaProducer,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    application = f"sd-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PGAPPNAME", application)  # libpq names our connections
    schema = f"t{uuid.uuid4().hex[:10]}"
    url = DatabaseUrl.parse(f"{postgres_url}?schema={schema}", "notes")
    Database(url).close()
    store = ServiceStore(url, "notes")
    stop = asyncio.Event()
    consumer = TrackedConsumer(
        service=f"notes-{uuid.uuid4().hex[:6]}",
        bootstrap=broker.bootstrap,
        topics=[topics.INBOUND],
        handlers=note_handlers(),
        store=store,
        producer=producer,
        incarnation=broker.cluster_id,
        session_timeout_ms=2000,
        batch_max=20,
    )
    together = 0  # fetches over several partitions applied in their one transaction
    attempt_together = consumer._attempt_together

    async def counted(batches: dict[TopicPartition, list[object]]) -> bool:
        nonlocal together
        stored = await attempt_together(batches)  # type: ignore[arg-type]
        together += 1
        return stored

    consumer._attempt_together = counted  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(consumer.run(stop))
    try:
        sent = [request(f"n{i}") for i in range(400)]
        killed = 0
        for i, message in enumerate(sent):
            await producer.send(topics.INBOUND, message.to_json(), key=message.kafka_key())
            if i % 100 == 50:
                killed += terminate_backends(postgres_url, "application_name", application)
        await producer.flush()
        await eventually(lambda: len(notes(store)) == len(sent), what="every note", timeout=90)
        assert killed > 0
        assert together > 0  # the cuts also hit fetches applied across partitions
        written = notes(store)
        assert set(written) == {m.subject_id for m in sent}
        assert set(written.values()) == {1}
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
        store.close()
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def test_a_batch_another_member_recorded_already_is_not_retried(
    broker: EmbeddedBroker, store: ServiceStore, producer: AIOKafkaProducer
) -> None:
    consumer = TrackedConsumer(
        service="notes",
        bootstrap=broker.bootstrap,
        topics=[topics.INBOUND],
        handlers=note_handlers(),
        store=store,
        producer=producer,
        incarnation=broker.cluster_id,
    )
    tp = TopicPartition(topics.INBOUND, 0)
    # Another member (or this one before a crash) applied offsets 0-2 and recorded it.
    uow = store.unit_of_work()
    uow.commit(Tracking(consumer.tracking_name(tp), 3))
    records = [record(tp, offset, request(f"late {offset}").to_json()) for offset in range(3)]

    await asyncio.wait_for(consumer.process(tp, records), timeout=10)

    assert notes(store) == {}  # not applied a second time, and not retried forever
    assert store.position(consumer.tracking_name(tp)) == 3


def test_a_unit_of_work_is_committed_once(store: ServiceStore) -> None:
    """Saving hands the events over even when the transaction fails: a second commit of
    the same unit of work would record the position without them."""
    uow = store.unit_of_work()
    uow.commit()
    with pytest.raises(RuntimeError, match="at most once"):
        uow.commit()


def test_effects_run_after_commit_only(store: ServiceStore) -> None:
    ran: list[str] = []
    thrown_away = store.unit_of_work()
    thrown_away.after_commit(lambda: ran.append("never"))
    committed = store.unit_of_work()
    committed.after_commit(lambda: ran.append("once"))
    assert ran == []
    committed.commit()
    assert ran == ["once"]


async def test_a_quiet_consumer_fetches_rarely_and_wakes_up_to_the_next_message(
    running: Running,
    producer: AIOKafkaProducer,
    store: ServiceStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Idle, the consumer asks the broker rarely (most of an idle stack's CPU): at the
    pace it was given (KAFKA_IDLE_FETCH_WAIT_MS, KAFKA_FETCH_WAIT_MS); the next message is
    applied all the same, and it fetches often again while messages flow."""
    monkeypatch.setattr(consumer_module, "IDLE_AFTER_SECONDS", 0.5)
    first = request("first")
    await send(producer, first.to_json())
    await eventually(lambda: first.subject_id in notes(store), what="the first note")
    assert running.consumer.fetch_wait_ms == PACING.busy_ms
    await eventually(
        lambda: running.consumer.fetch_wait_ms == PACING.idle_ms,
        what="the consumer to slow down",
    )
    after = request("after a quiet spell")
    await send(producer, after.to_json())
    await eventually(lambda: after.subject_id in notes(store), what="the next note")
    assert running.consumer.fetch_wait_ms == PACING.busy_ms
    assert running.alive()


async def test_messages_read_past_have_their_position_recorded_soon(
    running: Running, producer: AIOKafkaProducer, store: ServiceStore
) -> None:
    """A batch that changes nothing is not committed at once (a transaction for nothing),
    but its position is recorded within a second or so: a restart, or the gateway's
    readiness, must see how far the consumer read."""
    foreign = json.loads(request().to_json())
    foreign["event_type"] = "SomethingNewer"
    value, headers = json.dumps(foreign).encode(), [("event_type", b"SomethingNewer")]
    tracking = running.consumer.tracking_name(TopicPartition(topics.TICKETS, 0))
    await send(producer, value, topic=topics.TICKETS, headers=headers)
    await eventually(lambda: store.position(tracking) == 1, what="the first position")
    for _ in range(4):  # right after it: not committed with their batch
        await send(producer, value, topic=topics.TICKETS, headers=headers)
    await eventually(lambda: store.position(tracking) == 5, what="the position recorded")
    assert notes(store) == {}
    assert running.alive()


def fed_consumer(store: ServiceStore, producer: AIOKafkaProducer | None) -> TrackedConsumer:
    """A consumer handed fetches directly (`process_fetch`), as a broker would."""
    return Feed(store, note_handlers(), topics.INBOUND, producer=producer).consumer


def fetch_of(values: dict[int, list[bytes]]) -> dict[TopicPartition, list[object]]:
    """A fetch over several partitions of the inbound topic, from offset 0 in each."""
    return {
        TopicPartition(topics.INBOUND, partition): [
            record(TopicPartition(topics.INBOUND, partition), offset, value)
            for offset, value in enumerate(batch)
        ]
        for partition, batch in values.items()
    }


async def test_a_fetch_over_several_partitions_is_applied_in_one_transaction(
    store: ServiceStore,
) -> None:
    consumer = fed_consumer(store, producer=None)
    sent = {p: [request(f"p{p} n{i}") for i in range(3)] for p in range(4)}
    transactions = Saves(store)

    await consumer.process_fetch(fetch_of({p: [m.to_json() for m in b] for p, b in sent.items()}))

    assert transactions.count == 1
    assert set(notes(store)) == {m.subject_id for batch in sent.values() for m in batch}
    for partition in sent:
        tp = TopicPartition(topics.INBOUND, partition)
        assert store.position(consumer.tracking_name(tp)) == 3
    # The same fetch again (a broker handing it out again after a restart): nothing twice.
    again = fed_consumer(store, producer=None)
    await again.process_fetch(fetch_of({p: [m.to_json() for m in b] for p, b in sent.items()}))
    assert set(notes(store).values()) == {1}


async def test_a_fetch_with_a_partition_recorded_elsewhere_is_applied_partition_by_partition(
    store: ServiceStore,
) -> None:
    """Another member recorded partition 0 past this fetch (a rebalance): the one
    transaction fails on that position, so nothing of it stays, and each partition is
    applied on its own: 0 not again, 1 and 2 once."""
    consumer = fed_consumer(store, producer=None)
    tp0 = TopicPartition(topics.INBOUND, 0)
    store.unit_of_work().commit(Tracking(consumer.tracking_name(tp0), 3))
    sent = {p: [request(f"p{p} n{i}") for i in range(3)] for p in range(3)}
    transactions = Saves(store)

    await consumer.process_fetch(fetch_of({p: [m.to_json() for m in b] for p, b in sent.items()}))

    assert set(notes(store)) == {m.subject_id for p in (1, 2) for m in sent[p]}
    assert set(notes(store).values()) == {1}
    assert transactions.count == 1 + 3  # the one that failed, then each partition's own
    for partition in range(3):
        tp = TopicPartition(topics.INBOUND, partition)
        assert store.position(consumer.tracking_name(tp)) == 3


async def test_a_poison_message_in_a_fetch_leaves_the_other_partitions_applied_once(
    store: ServiceStore, producer: AIOKafkaProducer, broker: EmbeddedBroker
) -> None:
    consumer = fed_consumer(store, producer)
    good = {p: [request(f"p{p} n{i}") for i in range(2)] for p in range(3)}
    values = {p: [m.to_json() for m in batch] for p, batch in good.items()}
    values[1].insert(1, request(CRASH).to_json())
    values[2].append(b"[" * 50_000)

    await consumer.process_fetch(fetch_of(values))

    assert set(notes(store)) == {m.subject_id for batch in good.values() for m in batch}
    assert set(notes(store).values()) == {1}
    letters = await read_topic(broker.bootstrap, topics.DEAD_LETTER, 2)
    assert sorted(header(r, "error_reason") or "" for r in letters) == [
        "handler_error",
        "invalid_json",
    ]
    assert store.position(consumer.tracking_name(TopicPartition(topics.INBOUND, 1))) == 3


class SeekSpy:
    """Stands in for the Kafka client: where, and from which thread, it was told to seek."""

    def __init__(self) -> None:
        self.seeks: dict[TopicPartition, tuple[int, int]] = {}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = (offset, threading.get_ident())


async def test_new_partitions_resume_from_the_store_with_seeks_made_on_the_event_loop(
    store: ServiceStore,
) -> None:
    # aiokafka is not thread-safe: a seek made from a worker thread raced the fetcher
    # draining its records, and its KeyError stopped the service after a restart.
    consumer = fed_consumer(store, producer=None)
    recorded, fresh = TopicPartition(topics.INBOUND, 1), TopicPartition(topics.INBOUND, 2)
    store.unit_of_work().commit(Tracking(consumer.tracking_name(recorded), 17))
    spy = SeekSpy()
    consumer._client = spy  # type: ignore[assignment]

    await consumer_module._SeekToRecordedPositions(consumer).on_partitions_assigned(
        {recorded, fresh}
    )

    loop_thread = threading.get_ident()
    assert spy.seeks == {recorded: (17, loop_thread), fresh: (0, loop_thread)}


def decided(store: ServiceStore) -> dict[uuid.UUID, list[tuple[str, str]]]:
    """Each command's stored rows that say it was applied or decided: (kind, outcome)."""
    rows: dict[uuid.UUID, list[tuple[str, str]]] = {}
    markers = set()
    for notification in store.process_recorder.select_notifications(1, 1_000_000):
        if notification.topic.endswith("Received.Applied"):
            markers.add(notification.originator_id)
            continue
        event = store.mapper.to_domain_event(notification)
        if isinstance(event, CommandOutcome.Decided):
            instead = event.originator_id == Received.id_for(event.command_id)
            kind = "outcome as marker" if instead else "outcome"
            rows.setdefault(event.command_id, []).append((kind, event.outcome))
    for command_id, found in rows.items():
        if Received.id_for(command_id) in markers:
            found.append(("marker", ""))
    return rows


async def test_a_command_decided_by_its_handler_is_one_stored_row(
    store: ServiceStore, producer: AIOKafkaProducer
) -> None:
    # Its outcome stands in for the `Received` marker: one row less per command.
    feed = Feed(store, note_handlers(), topics.INBOUND, producer=producer)
    applied, refused = request("printer"), request(REFUSE)

    await feed.deliver([applied, refused])
    await feed.deliver([applied, refused])  # again: duplicates, decided once

    assert decided(store) == {
        applied.event_id: [("outcome as marker", "applied")],
        refused.event_id: [("outcome as marker", "refused")],
    }
    assert set(notes(store)) == {applied.subject_id}
    assert set(notes(store).values()) == {1}


async def test_a_command_refused_by_its_contract_then_replayed_fixed_is_applied_once(
    store: ServiceStore, producer: AIOKafkaProducer
) -> None:
    feed = Feed(store, note_handlers(), topics.INBOUND, producer=producer)
    fixed = request("printer")
    broken = json.loads(fixed.to_json())
    broken["data"]["subject"] = ""  # refused by the contract: decided, not applied
    await feed.consumer.process(feed.tp, [record(feed.tp, 0, json.dumps(broken).encode())])
    feed.offset = 1

    await feed.deliver([fixed])  # the operator's fixed copy, under the same event_id
    await feed.deliver([fixed])

    assert decided(store) == {fixed.event_id: [("outcome", "refused"), ("marker", "")]}
    assert notes(store) == {fixed.subject_id: 1}


async def test_commands_stored_with_a_marker_and_an_outcome_stay_applied_and_decided(
    store: ServiceStore,
) -> None:
    # What stores written before outcomes stood in for markers hold.
    feed = Feed(store, note_handlers(), topics.INBOUND)
    command = request("printer")
    outcome = CommandOutcome(
        command_id=command.event_id,
        command_type=command.event_type,
        correlation_id=str(command.event_id),
        outcome="applied",
        reason=None,
        detail=None,
        produced=[],
    )
    store.save(outcome, Received.of(command.event_id))

    await feed.deliver([command])

    assert decided(store) == {command.event_id: [("outcome", "applied"), ("marker", "")]}
    assert notes(store) == {}


async def test_a_database_away_during_an_assignment_is_waited_for_not_read_from_zero(
    store: ServiceStore,
) -> None:
    # A seek to 0 would replay the partition's whole history; a failed listener would
    # leave it at the broker's committed offset (none: the earliest). Neither happens.
    consumer = fed_consumer(store, producer=None)
    tp = TopicPartition(topics.INBOUND, 1)
    store.unit_of_work().commit(Tracking(consumer.tracking_name(tp), 42))
    spy = SeekSpy()
    consumer._client = spy  # type: ignore[assignment]
    real_position, failures = store.position, [0]

    def away_twice(name: str) -> int | None:
        if failures[0] < 2:
            failures[0] += 1
            raise psycopg.OperationalError("the connection was cut")
        return real_position(name)

    store.position = away_twice  # type: ignore[method-assign]

    await consumer_module._SeekToRecordedPositions(consumer).on_partitions_assigned({tp})

    assert failures == [2]
    assert spy.seeks == {tp: (42, threading.get_ident())}
