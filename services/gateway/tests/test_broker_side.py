"""The gateway's outbox and its broker side on the real embedded broker, on SQLite and
PostgreSQL: a stored command reaches its topic, reaches a new broker again with the same
bytes and `event_id`, and a new broker gets a new view."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from servicedesk_contracts import messages as m
from servicedesk_contracts import topics
from servicedesk_gateway.broker import BrokerSide
from servicedesk_gateway.outbox import store_command
from servicedesk_gateway.read_model import ReadModel
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.ends import end_offsets
from servicedesk_runtime.relay import RelayPositions
from servicedesk_runtime.store import ServiceStore
from servicedesk_runtime.tansu import EmbeddedBroker
from servicedesk_stack.waiting import eventually

pytestmark = pytest.mark.integration


async def inbound(bootstrap: str) -> list[bytes]:
    """Every value on the inbound topic now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topics.INBOUND, p) for p in range(topics.PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await end_offsets(bootstrap, partitions)
        values: list[bytes] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                values += [r.value for r in records if r.value is not None]
        return values
    finally:
        await consumer.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gateway.db'}"
        return
    base: str = request.getfixturevalue("postgres_url")
    schema = f"t{uuid.uuid4().hex[:8]}_gateway"
    yield f"{base}?schema={schema}"
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[tuple[ServiceStore, Database]]:
    url = DatabaseUrl.parse(database_url, "gateway")
    database = Database(url)
    service_store = ServiceStore(url, "gateway")
    yield service_store, database
    service_store.close()
    database.close()


async def test_a_stored_command_reaches_every_new_broker_with_the_same_bytes(
    store: tuple[ServiceStore, Database],
) -> None:
    service_store, database = store
    broker = EmbeddedBroker()
    broker.start()
    views: list[ReadModel] = []
    side = BrokerSide(
        bootstrap=broker.bootstrap,
        store=service_store,
        positions=RelayPositions(database),
        show=views.append,
        check_every=0.2,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(side.run(stop))
    try:
        await eventually(side.ready, what="the first view")
        command = m.ReplyAsAgent.create(
            producer="gateway", subject_id=uuid.uuid4(), data={"agent": "mette", "body": "On it"}
        )
        await store_command(service_store, topics.INBOUND, command)
        side.wake_relay()
        published = await inbound(broker.bootstrap)
        assert published == [command.to_json()]

        broker.stop()  # everything on it is gone
        old_incarnation = broker.cluster_id
        broker.cluster_id = f"servicedesk-{uuid.uuid4().hex[:12]}"
        broker.start()  # same address, new incarnation
        await eventually(lambda: side.incarnation == broker.cluster_id, what="the new broker")
        assert side.incarnation != old_incarnation
        await eventually(side.ready, what="the rebuilt view")
        assert len(views) == 2
        assert views[0] is not views[1]  # a new, empty view for the new broker
        republished: list[bytes] = []
        async with asyncio.timeout(60):
            while not republished:  # the relay publishes to the new broker soon
                republished = await inbound(broker.bootstrap)
        assert republished == [command.to_json()]  # same event_id: consumers drop a repeat
    finally:
        stop.set()
        await running
        broker.stop()
