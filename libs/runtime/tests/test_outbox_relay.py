"""The outbox relay on real parts: it rides out a broker that goes away and a database
connection that is cut, and it can always publish what was stored under older rules."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from libs.runtime.tests.exactly_once_kit import Note, read_topic, terminate_backends

from servicedesk_contracts import Message, topics
from servicedesk_contracts import messages as m
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.kafka import ensure_topics
from servicedesk_runtime.relay import OutboxRelay, RelayPositions, message_for
from servicedesk_runtime.store import ServiceStore
from servicedesk_runtime.tansu import EmbeddedBroker
from servicedesk_stack.waiting import eventually

pytestmark = pytest.mark.integration


def as_reply(event: Any) -> tuple[str, Message] | None:
    if not isinstance(event, Note.Written):
        return None
    return topics.TICKETS, message_for(
        event, m.AddCustomerReply, "notes", author_email="a@acme.example", body=event.text
    )


def write_notes(store: ServiceStore, texts: list[str]) -> None:
    for text in texts:
        store.save(Note(subject_id=uuid.uuid4(), text=text))


class Relaying:
    def __init__(self, relay: OutboxRelay, stop: asyncio.Event) -> None:
        self.relay = relay
        self.stop = stop


@pytest.fixture
async def relaying(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedBroker, ServiceStore, Relaying]]:
    url = DatabaseUrl.parse(f"sqlite:///{tmp_path}/notes.db", "notes")
    store = ServiceStore(url, "notes")
    database = Database(url)
    broker = EmbeddedBroker()
    broker.start()
    await ensure_topics(broker.bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=3000)
    await producer.start()
    stop = asyncio.Event()
    relay = OutboxRelay(
        service="notes",
        store=store,
        positions=RelayPositions(database),
        producer=producer,
        incarnation=broker.cluster_id,
        translate=as_reply,
    )
    task = asyncio.create_task(relay.run(stop))
    yield broker, store, Relaying(relay, stop)
    stop.set()
    await asyncio.wait_for(task, timeout=30)
    await producer.stop()
    broker.stop()
    store.close()
    database.close()


async def bodies(broker: EmbeddedBroker, at_least: int) -> list[str]:
    records = await read_topic(broker.bootstrap, topics.TICKETS, at_least, timeout=120)
    return sorted(m.AddCustomerReply.model_validate_json(r.value).data.body for r in records)


async def test_the_relay_waits_out_a_broker_that_is_away(
    relaying: tuple[EmbeddedBroker, ServiceStore, Relaying],
) -> None:
    broker, store, running = relaying
    write_notes(store, ["one", "two"])
    assert await bodies(broker, 2) == ["one", "two"]

    broker.stop()  # the broker goes away; events keep being stored meanwhile
    write_notes(store, ["three", "four"])
    await eventually(lambda: not running.relay.healthy, what="the relay to notice")
    broker.start()  # back on the same port (an embedded broker comes back empty)
    await ensure_topics(broker.bootstrap)

    assert await bodies(broker, 2) == ["four", "three"]
    await eventually(lambda: running.relay.healthy, what="the relay to recover")
    assert not running.stop.is_set()


async def test_the_relay_rides_out_a_cut_database_connection(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    application = f"sd-relay-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PGAPPNAME", application)
    schema = f"t{uuid.uuid4().hex[:10]}"
    url = DatabaseUrl.parse(f"{postgres_url}?schema={schema}", "notes")
    database = Database(url)
    store = ServiceStore(url, "notes")
    stop = asyncio.Event()
    try:
        with EmbeddedBroker() as broker:
            await ensure_topics(broker.bootstrap)
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
            await producer.start()
            relay = OutboxRelay(
                service="notes",
                store=store,
                positions=RelayPositions(database),
                producer=producer,
                incarnation=broker.cluster_id,
                translate=as_reply,
                poll_interval=0.01,
            )
            task = asyncio.create_task(relay.run(stop))
            write_notes(store, ["before"])
            await bodies(broker, 1)
            assert terminate_backends(postgres_url, "application_name", application)
            for attempt in range(20):  # the writer, too, meets a cut connection first
                try:
                    write_notes(store, ["after"])
                    break
                except Exception:
                    await asyncio.sleep(0.1 * attempt)
            # (At least once: a cut may come after a commit, so the writer may have stored
            # "after" twice; what matters is that the relay goes on.)
            assert set(await bodies(broker, 2)) == {"after", "before"}
            assert not task.done()
            stop.set()
            await asyncio.wait_for(task, timeout=30)
            await producer.stop()
    finally:
        store.close()
        database.close()
        with psycopg.connect(postgres_url, autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class _StoredReply:
    """A stored domain event as the relay meets it: an address accepted before `$` was
    replaced by fullmatch in the e-mail rule (it ends in a newline)."""

    originator_id = uuid.uuid4()
    originator_version = 3
    timestamp = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    reference = "SD-000001"
    author_email = "anna@acme.example\n"
    body = "Thanks"
    replied_at = timestamp


def test_the_relay_can_publish_an_event_stored_under_older_rules() -> None:
    """Otherwise one such event would stop the relay for good: it publishes in order."""
    with pytest.raises(ValueError, match="not an e-mail address"):
        m.CustomerRepliedData(
            reference="SD-000001",
            author_email="anna@acme.example\n",
            body="x",
            replied_at=_StoredReply.timestamp,
        )
    message = message_for(_StoredReply(), m.CustomerReplied, "intake")
    assert isinstance(message, m.CustomerReplied)
    assert message.data.author_email == "anna@acme.example\n"


async def test_the_relay_hears_of_events_another_process_commits(postgres_url: str) -> None:
    """On PostgreSQL the relay LISTENs to the NOTIFY each insert sends: events stored by
    another writer (a replica, a tool) go out at once, though the relay would not poll for
    five minutes."""
    schema = f"t{uuid.uuid4().hex[:10]}"
    url = DatabaseUrl.parse(f"{postgres_url}?schema={schema}", "notes")
    database = Database(url)
    store, other_writer = ServiceStore(url, "notes"), ServiceStore(url, "notes")
    stop = asyncio.Event()
    try:
        with EmbeddedBroker() as broker:
            await ensure_topics(broker.bootstrap)
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
            await producer.start()
            relay = OutboxRelay(
                service="notes",
                store=store,
                positions=RelayPositions(database),
                producer=producer,
                incarnation=broker.cluster_id,
                translate=as_reply,
                poll_interval=300,
            )
            task = asyncio.create_task(relay.run(stop))
            write_notes(other_writer, ["first"])  # maybe before the LISTEN: its first round
            assert await bodies(broker, 1) == ["first"]
            write_notes(other_writer, ["second"])  # certainly after: only NOTIFY tells
            records = await read_topic(broker.bootstrap, topics.TICKETS, 2, timeout=30)
            assert len(records) == 2
            # The listening connection is cut (a database restart, a proxy's timeout): it
            # is opened again, and what was committed meanwhile goes out as well.
            listening = f'LISTEN "{store.recorder.channel_name}"'
            assert terminate_backends(postgres_url, "query", listening) == 1
            write_notes(other_writer, ["third"])
            records = await read_topic(broker.bootstrap, topics.TICKETS, 3, timeout=30)
            assert len(records) == 3
            write_notes(other_writer, ["fourth"])  # and it listens again
            records = await read_topic(broker.bootstrap, topics.TICKETS, 4, timeout=30)
            assert len(records) == 4
            stop.set()
            await asyncio.wait_for(task, timeout=30)
            await producer.stop()
    finally:
        store.close()
        other_writer.close()
        database.close()
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def test_the_relay_saves_its_position_once_caught_up(
    relaying: tuple[EmbeddedBroker, ServiceStore, Relaying],
) -> None:
    """While events flow the position is saved at most once a second; a relay that has
    published everything saves where it is, so a restart publishes nothing again."""
    broker, store, running = relaying
    write_notes(store, [f"note {n}" for n in range(30)])
    running.relay.wake()
    assert len(await bodies(broker, 30)) == 30
    newest = store.process_recorder.max_notification_id()
    positions = running.relay.positions
    await eventually(
        lambda: positions.get(running.relay.incarnation) == newest, what="the position saved"
    )
