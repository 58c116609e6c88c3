"""The view is a projection: dropped and rebuilt from the topics it equals the live one,
row for row and position for position, on both engines; and a gateway started after the
rebuild goes on from where the rebuild stopped (nothing applied twice, nothing missed)."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from services.gateway.tests.view_messages import (
    NOW,
    breached,
    confirmation_sent,
    customer_reply,
    opened,
    publish,
    started,
    status,
    time_logged,
    triaged,
    warned,
)

from servicedesk_contracts import Message, topics
from servicedesk_contracts import messages as m
from servicedesk_gateway.broker import BrokerSide
from servicedesk_gateway.rebuild import rebuild
from servicedesk_gateway.view.queries import Sort, TicketFilter
from servicedesk_gateway.view.store import GatewayView
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.kafka import ensure_topics
from servicedesk_runtime.progress import Progress
from servicedesk_runtime.relay import RelayPositions
from servicedesk_runtime.store import ServiceStore
from servicedesk_runtime.tansu import EmbeddedBroker
from servicedesk_stack.demo import provider_z_premium
from servicedesk_stack.waiting import eventually

pytestmark = pytest.mark.integration
Z = uuid.UUID("00000000-0000-4000-8000-00000000000b")


def desk_events(tickets: int) -> list[Message]:
    events: list[Message] = [
        m.AgreementRegistered.create(producer="billing", subject_id=Z, data=provider_z_premium())
    ]
    for n in range(1, tickets + 1):
        at = NOW + timedelta(minutes=n)
        ticket = opened(n, at, agreement_id=Z)
        due = at + timedelta(hours=1 + n % 3)
        events += [ticket, triaged(ticket, f"P{1 + n % 4}"), started(ticket, due - at)]
        events.append(confirmation_sent(ticket))
        if n % 3 == 0:
            events += [warned(ticket, due), breached(ticket, due)]
        if n % 4 == 0:
            events += [status(ticket, "awaiting_reply", at + timedelta(minutes=5))]
            events += [customer_reply(ticket, f"Serial number {n}", at + timedelta(minutes=9))]
        if n % 5 == 0:
            events.append(time_logged(ticket, 11, at + timedelta(minutes=2)))
    return events


def dump(view: GatewayView) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the view and its positions, in a fixed order."""
    tables = view.tables
    search = (
        f"SELECT event_id, ticket_id, body::text FROM {tables.search} ORDER BY 1"
        if tables.is_postgres
        else f"SELECT ticket_id, body FROM {tables.search} ORDER BY 1, 2"
    )
    queries = {
        name: f"SELECT * FROM {table} ORDER BY {'1, 2' if name == 'statements' else '1'}"
        for name, table in (
            ("tickets", tables.tickets),
            ("events", tables.events),
            ("notifications", tables.notifications),
            ("agreements", tables.agreements),
            ("statements", tables.statements),
            ("applied", view.store.applied_table),
        )
    }
    with view.database.reading() as cursor:
        rows: dict[str, list[tuple[object, ...]]] = {}
        for name, sql in {**queries, "search": search}.items():
            cursor.execute(sql)
            rows[name] = [tuple(row) for row in cursor.fetchall()]
    rows["positions"] = sorted(view.store.positions().items())
    return rows


@pytest.fixture
async def broker() -> AsyncIterator[EmbeddedBroker]:
    broker = EmbeddedBroker()
    broker.start()
    await ensure_topics(broker.bootstrap)
    yield broker
    broker.stop()


async def run_gateway(side: BrokerSide, until: object) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(side.run(stop))
    try:
        await eventually(until, what="the live view")  # type: ignore[arg-type]
    finally:
        stop.set()
        await running


async def test_the_rebuilt_view_equals_the_live_one_and_the_gateway_resumes_after_it(
    broker: EmbeddedBroker, database_url: str
) -> None:
    url = DatabaseUrl.parse(database_url, "gateway")
    database = Database(url)
    store = ServiceStore(url, "gateway")
    view = GatewayView(database)
    events = desk_events(40)
    await publish(broker.bootstrap, *events, *events[:5])  # a relay republished some
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    await producer.send_and_wait(topics.TICKETS, b'{"event_type": "TicketOpened", "data": 7}')
    await producer.stop()

    def side() -> BrokerSide:
        return BrokerSide(
            bootstrap=broker.bootstrap, store=store, positions=RelayPositions(database), view=view
        )

    live = side()
    await run_gateway(live, live.ready)
    live_rows = dump(view)
    assert len(live_rows["tickets"]) == 40
    assert len(live_rows["events"]) == len([e for e in events if e.producer != "billing"]) - 40

    out = io.StringIO()
    progress = Progress(total=1, out=out)
    result = await rebuild(view, broker.bootstrap, lambda done, total: progress.show(done))
    assert dump(view) == live_rows
    assert result.skipped == 1  # the malformed record
    assert "records" in out.getvalue()

    later = customer_reply(events[1], "It works again, thanks", NOW + timedelta(hours=5))  # type: ignore[arg-type]
    await publish(broker.bootstrap, later)
    resumed = side()

    def applied_once() -> bool:
        ticket = view.queries.ticket(events[1].subject_id)
        return ticket is not None and ticket.customer_replies == 1 and resumed.ready()

    await run_gateway(resumed, applied_once)
    after = dump(view)
    assert len(after["events"]) == len(live_rows["events"]) + 1  # only the new reply
    assert after["tickets"] != live_rows["tickets"]
    store.close()
    database.close()


async def test_two_gateway_replicas_share_the_work_and_lose_no_update(
    broker: EmbeddedBroker, postgres_url: str
) -> None:
    """Two replicas in one consumer group, one PostgreSQL schema, events published while
    both run: the partitions are split between them and every ticket comes out whole. (A
    ticket's events share its key, so with the range assignor one replica usually has all
    of them; the row lock makes the rare shared ticket safe, not this test.)"""
    schema = f"t{uuid.uuid4().hex[:12]}"
    url = DatabaseUrl.parse(f"{postgres_url}?schema={schema}", "gateway")
    replicas = []
    for _ in range(2):
        database = Database(url)
        replicas.append((database, ServiceStore(url, "gateway"), GatewayView(database)))
    tickets = 150
    events = desk_events(tickets)
    view = replicas[0][2]
    sides = [
        BrokerSide(
            bootstrap=broker.bootstrap, store=store, positions=RelayPositions(database), view=v
        )
        for database, store, v in replicas
    ]
    stop = asyncio.Event()
    running = [asyncio.create_task(side.run(stop)) for side in sides]

    def complete() -> bool:
        page = view.queries.tickets(TicketFilter(), Sort.parse("received"), limit=500)
        return len(page.tickets) == tickets and all(t.priority and t.sla for t in page.tickets)

    try:
        await eventually(lambda: all(side.ready() for side in sides), what="both replicas")
        shares = [side.assigned() for side in sides]
        assert all(shares)  # each replica consumes some partitions...
        assert not shares[0] & shares[1]  # ...and no partition twice
        await publish(broker.bootstrap, *events)  # now, so both apply at once
        await eventually(complete, what="every ticket whole")
    finally:
        stop.set()
        await asyncio.gather(*running)
    page = view.queries.tickets(TicketFilter(), Sort.parse("received"), limit=500)
    replies = {t.reference: t.customer_replies for t in page.tickets}
    assert sum(replies.values()) == tickets // 4  # every fourth ticket had one reply
    with view.database.reading() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {view.tables.events}")
        (stored,) = cursor.fetchone() or (0,)
    assert stored == len([e for e in events if e.producer not in ("billing", "notifier")])
    positions = view.store.positions()
    assert positions  # both replicas recorded into the one table
    for database, store, _ in replicas:
        store.close()
        database.close()
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
