"""The gateway's outbox and its broker side on the real embedded broker, on SQLite and
PostgreSQL: a stored command reaches its topic, reaches a new broker again with the same
bytes and `event_id`; the view outlives the broker and applies its republished events
once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from services.gateway.tests.view_messages import publish

from servicedesk_contracts import messages as m
from servicedesk_contracts import topics
from servicedesk_gateway.broker import BrokerSide
from servicedesk_gateway.outbox import store_command
from servicedesk_gateway.view.store import GatewayView
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


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[tuple[ServiceStore, Database]]:
    url = DatabaseUrl.parse(database_url, "gateway")
    database = Database(url)
    service_store = ServiceStore(url, "gateway")
    yield service_store, database
    service_store.close()
    database.close()


def opened_and_replied(ticket_id: uuid.UUID) -> tuple[m.TicketOpened, m.AgentReplied]:
    when = "2026-11-24T09:00:00Z"
    opened = m.TicketOpened.create(
        producer="intake",
        subject_id=ticket_id,
        data={
            "agreement_id": uuid.uuid4(),
            "reporter_email": "anna@acme.example",
            "reporter_name": "Anna",
            "organisation": "Acme",
            "channel": "email",
            "subject": "Scanner offline",
            "body": "Hall 2",
            "category": "incident",
            "impact": "one user",
            "urgency": "high",
            "reference": "SD-000007",
            "received_at": when,
        },
    )
    replied = m.AgentReplied.create(
        producer="intake",
        subject_id=ticket_id,
        data={"reference": "SD-000007", "agent": "mette", "body": "On it", "replied_at": when},
    )
    return opened, replied


async def test_a_stored_command_reaches_every_new_broker_with_the_same_bytes(
    store: tuple[ServiceStore, Database],
) -> None:
    service_store, database = store
    broker = EmbeddedBroker()
    broker.start()
    view = GatewayView(database)
    side = BrokerSide(
        bootstrap=broker.bootstrap,
        store=service_store,
        positions=RelayPositions(database),
        view=view,
        check_every=0.2,
    )
    ticket_id = uuid.uuid4()
    events = opened_and_replied(ticket_id)

    def replies() -> int:
        ticket = view.queries.ticket(ticket_id)
        return -1 if ticket is None else ticket.agent_replies

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
        await publish(broker.bootstrap, *events)
        await eventually(lambda: replies() == 1, what="the ticket in the view")

        broker.stop()  # everything on it is gone
        old_incarnation = broker.cluster_id
        broker.cluster_id = f"servicedesk-{uuid.uuid4().hex[:12]}"
        broker.start()  # same address, new incarnation
        await eventually(lambda: side.incarnation == broker.cluster_id, what="the new broker")
        assert side.incarnation != old_incarnation
        assert replies() == 1  # the view is kept: nothing to rebuild
        # intake's relay republishes its log to the new broker: the view applied it already
        again = m.AgentReplied.create(
            producer="intake",
            subject_id=ticket_id,
            data={**events[1].data.model_dump(), "body": "Fixed"},
        )
        await publish(broker.bootstrap, *events, again)
        await eventually(side.ready, what="the view caught up with the new broker")
        assert replies() == 2  # the republished reply once, the new one once
        republished: list[bytes] = []
        async with asyncio.timeout(60):
            while not republished:  # the relay publishes to the new broker soon
                republished = await inbound(broker.bootstrap)
        assert republished == [command.to_json()]  # same event_id: consumers drop a repeat
    finally:
        stop.set()
        await running
        broker.stop()
