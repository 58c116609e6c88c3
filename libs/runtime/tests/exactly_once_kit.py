"""A tiny service for testing the exactly-once core on real parts: it turns each
`SubmitTicket` into one `Note` aggregate. Its subject line steers what goes wrong."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from eventsourcing.domain import Aggregate, event
from psycopg import sql

from servicedesk_contracts import Message, topics
from servicedesk_contracts import messages as m
from servicedesk_runtime.consumer import Handler, Rejected, TrackedConsumer, TrackedStore, handles
from servicedesk_runtime.store import ServiceStore, UnitOfWork

CRASH = "crash"
"""A subject whose handler raises (a bug)."""
REFUSE = "refuse"
"""A subject the domain refuses (`Rejected`)."""
UNSTORABLE = "unstorable"
"""A subject whose event cannot be stored (a lone surrogate in it)."""


class Note(Aggregate):
    @staticmethod
    def create_id(subject_id: uuid.UUID, text: str = "") -> uuid.UUID:  # type: ignore[override]
        return uuid.uuid5(uuid.NAMESPACE_URL, f"note:{subject_id}")

    @event("Written")
    def __init__(self, subject_id: uuid.UUID, text: str) -> None:
        self.subject_id = subject_id
        self.text = text


def write_note(request: m.SubmitTicket, uow: UnitOfWork) -> None:
    subject = request.data.subject
    if subject == CRASH:
        raise RuntimeError("a bug in the handler")
    if subject == REFUSE:
        raise Rejected("refused_for_test", "the domain says no")
    text = "\ud800" if subject == UNSTORABLE else subject
    uow.get_or_create(Note, subject_id=request.subject_id, text=text)


def note_handlers() -> dict[str, Handler]:
    return dict([handles(m.SubmitTicket, write_note)])


def request(subject: str = "printer", **envelope: Any) -> m.SubmitTicket:
    subject_id = uuid.uuid4()
    message: m.SubmitTicket = m.SubmitTicket.create(
        producer="test",
        subject_id=subject_id,
        event_id=subject_id,
        occurred_at=datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
        data={
            "agreement_id": uuid.uuid4(),
            "reporter_email": "anna@acme.example",
            "reporter_name": "Anna",
            "organisation": "Acme",
            "channel": "api",
            "subject": subject,
            "body": "offline",
            "category": "incident",
            "impact": "one user",
            "urgency": "low",
        },
        **envelope,
    )
    return message


def notes(store: ServiceStore) -> dict[uuid.UUID, int]:
    """How many `Note.Written` events each subject has in the store."""
    counted: dict[uuid.UUID, int] = {}
    for notification in store.process_recorder.select_notifications(1, 1_000_000):
        if notification.topic.endswith("Note.Written"):
            note = store.mapper.to_domain_event(notification)
            counted[note.subject_id] = counted.get(note.subject_id, 0) + 1
    return counted


async def read_topic(bootstrap: str, topic: str, at_least: int, timeout: float = 30) -> list[Any]:
    """Every record of `topic` from its beginning, once at least `at_least` are there
    (counting what was read, not trusting the broker's end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(topics.PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < at_least:
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: {len(records)} records, wanted {at_least}")
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
        # Anything more that is already there (a duplicate would show here).
        for _ in range(3):
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


def header(record: Any, name: str) -> str | None:
    for key, value in record.headers:
        if key == name:
            return bytes(value).decode()
    return None


class Feed:
    """Hands the real consumer (`TrackedConsumer.process`) batches of records, as a broker
    would, with rising offsets: a service's handlers applied exactly as in production,
    without a broker. Without a `producer` nothing may be dead-lettered."""

    def __init__(
        self,
        store: TrackedStore,
        handlers: dict[str, Handler],
        topic: str,
        partition: int = 0,
        producer: AIOKafkaProducer | None = None,
    ) -> None:
        self.tp = TopicPartition(topic, partition)
        self.offset = 0
        self.consumer = TrackedConsumer(
            service="fed",
            bootstrap="127.0.0.1:9",  # never connected: batches are handed over directly
            topics=[topic],
            handlers=handlers,
            store=store,
            producer=producer,  # type: ignore[arg-type]
            incarnation="test",
        )

    async def deliver(self, messages: Sequence[Message]) -> None:
        records = []
        for message in messages:
            # With the headers a relay sends.
            records.append(record(self.tp, self.offset, message.to_json(), message.kafka_headers()))
            self.offset += 1
        await self.consumer.process(self.tp, records)


def record(
    tp: TopicPartition,
    offset: int,
    value: bytes,
    headers: Sequence[tuple[str, bytes]] = (),
) -> ConsumerRecord[bytes, bytes]:
    """A record as the broker hands it to the consumer."""
    return ConsumerRecord(
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=len(value),
        headers=headers,
    )


def terminate_backends(
    postgres_url: str, column: Literal["application_name", "query"], value: str
) -> int:
    """Ends, server side, every other connection whose `column` in pg_stat_activity is
    `value`: a cut connection, as a database restart or a proxy's timeout makes one."""
    statement = sql.SQL(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE {} = %s AND pid <> pg_backend_pid()"
    ).format(sql.Identifier(column))
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        return len(connection.execute(statement, (value,)).fetchall())


class Saves:
    """Counts the transactions a store attempts (a spy on the real store)."""

    def __init__(self, store: ServiceStore) -> None:
        self.count = 0
        real = store.save_with_tracking

        def counted(*args: Any, **kwargs: Any) -> None:
            self.count += 1
            real(*args, **kwargs)

        store.save_with_tracking = counted  # type: ignore[method-assign]
