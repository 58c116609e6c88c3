"""Gateway view benchmark: how fast the view is built, and how fast agents' queries answer
with many tickets in it.

1. Build: N tickets, each opened, triaged and given a response clock (3 events; every
   tenth also warned, every 50th breached, every 7th waiting on the customer, every 3rd
   assigned), applied in batches of 2,000 through the same handlers and transactions the
   live consumer uses (Kafka aside): events/s.
2. Rebuild from the topics: the first `--rebuild` events published on the embedded broker
   and `python -m servicedesk_gateway.rebuild`'s code run over them: events/s end to end.
3. Queries with N tickets in the view: p50/p95/p99 over `--rounds` calls each, through the
   HTTP app (in process, httpx's ASGI transport), as an agent.

    .venv/bin/python -u -m bench.gateway_view [--tickets 1000000] [--database-url URL]

(run as a module from the checkout: it builds its events with the gateway tests' helpers)
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from services.gateway.tests.view_messages import (
    breached,
    opened,
    publish,
    started,
    status,
    triaged,
    warned,
)

from servicedesk_contracts import Message
from servicedesk_contracts import messages as m
from servicedesk_gateway.auth import parse_tokens
from servicedesk_gateway.http import create_http_app
from servicedesk_gateway.rebuild import rebuild
from servicedesk_gateway.view.store import GatewayView
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.kafka import ensure_topics
from servicedesk_runtime.tansu import EmbeddedBroker
from servicedesk_stack.demo import provider_z_premium

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
Z = uuid.UUID("00000000-0000-4000-8000-00000000000b")
AGENT = {"Authorization": "Bearer bench"}
WORDS = ("printer", "scanner", "backup", "invoice", "vpn", "login", "mail", "laptop")


def ticket_events(n: int) -> list[Message]:
    at = START + timedelta(seconds=30 * n)
    word = WORDS[n % len(WORDS)]
    ticket = opened(n, at, agreement_id=Z, subject=f"{word} problem {n}")
    due = at + timedelta(hours=1 + n % 8)
    events: list[Message] = [ticket, triaged(ticket, f"P{1 + n % 4}"), started(ticket, due - at)]
    if n % 10 == 0:
        events.append(warned(ticket, due))
    if n % 50 == 0:
        events.append(breached(ticket, due))
    if n % 7 == 0:
        events.append(status(ticket, "awaiting_reply", at + timedelta(minutes=5)))
    if n % 3 == 0:
        events.append(_assigned(ticket, f"agent{n % 25}", at))
    return events


def _assigned(ticket: m.TicketOpened, agent: str, at: datetime) -> m.TicketAssigned:
    return m.TicketAssigned.create(
        producer="intake",
        subject_id=ticket.subject_id,
        data={
            "reference": ticket.data.reference,
            "assignee": agent,
            "group": "first-line",
            "assigned_by": "lead",
            "assigned_at": at,
        },
        occurred_at=at + timedelta(minutes=1),
    )


def batches(tickets: int, size: int = 2000) -> Iterator[list[Message]]:
    batch: list[Message] = []
    for n in range(1, tickets + 1):
        batch += ticket_events(n)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def build(view: GatewayView, tickets: int) -> None:
    view.apply(
        m.AgreementRegistered.create(producer="billing", subject_id=Z, data=provider_z_premium())
    )
    started_at = time.perf_counter()
    events = 0
    for batch in batches(tickets):
        view.apply(*batch)
        events += len(batch)
        if events % 200_000 < len(batch):
            rate = events / (time.perf_counter() - started_at)
            print(f"  ... {events:,} events, {rate:,.0f}/s", flush=True)
    elapsed = time.perf_counter() - started_at
    print(
        f"build: {tickets:,} tickets, {events:,} events in {elapsed:,.1f} s = "
        f"{events / elapsed:,.0f} events/s"
    )


async def rebuild_from_topics(events: int) -> None:
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as folder:
        await ensure_topics(broker.bootstrap)
        messages: list[Message] = []
        n = 0
        while len(messages) < events:
            n += 1
            messages += ticket_events(n)
        await publish(broker.bootstrap, *messages)
        database = Database(DatabaseUrl.parse(f"sqlite:///{folder}/view.db", "gateway"))
        result = await rebuild(GatewayView(database), broker.bootstrap)
        database.close()
    print(
        f"rebuild from the topics (SQLite, embedded broker): {result.events:,} events in "
        f"{result.seconds:,.1f} s = {result.events / result.seconds:,.0f} events/s"
    )


QUERIES = {
    "newest first (GET /tickets)": "/tickets",
    "open P1, next deadline first": "/tickets?status=open&priority=P1&sort=due",
    "at risk": "/tickets?at_risk=true&sort=due",
    "search one word": "/tickets?q=backup&limit=50",
    "search two words": "/tickets?q=scanner%20problem&limit=50",
    "one agent's queue": "/tickets?assignee=agent7&sort=due",
    "breaching next (queue)": "/queues/breaching-next",
    "unassigned in a group": "/queues/unassigned?group=first-line",
    "a ticket by reference": "/tickets/SD-000777",
    "a ticket's timeline": "/tickets/SD-000777/timeline",
    "workload per agent": "/workload",
}


async def measure_queries(view: GatewayView, rounds: int) -> None:
    async def publish_nothing(topic: str, message: Message) -> None:
        return None

    app = create_http_app(view.queries, publish_nothing, parse_tokens("bench:agent"), lambda: START)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        for name, url in QUERIES.items():
            answer = await client.get(url, headers=AGENT)
            assert answer.status_code == 200, (url, answer.text[:300])
            latencies = []
            for _ in range(rounds):
                begun = time.perf_counter()
                await client.get(url, headers=AGENT)
                latencies.append((time.perf_counter() - begun) * 1000)
            cuts = statistics.quantiles(latencies, n=100)
            print(
                f"  {name:32} p50 {cuts[49]:7.1f} ms  p95 {cuts[94]:7.1f} ms  "
                f"p99 {cuts[98]:7.1f} ms"
            )
        deep = await _deep_page(client)
        print(f"  {'page 200 of newest first':32} {deep:7.1f} ms (cursor paging, one call)")


async def _deep_page(client: httpx.AsyncClient) -> float:
    cursor = None
    elapsed = 0.0
    for _ in range(200):
        params = {"limit": "50", **({"cursor": cursor} if cursor else {})}
        begun = time.perf_counter()
        page = (await client.get("/tickets", params=params, headers=AGENT)).json()
        elapsed = (time.perf_counter() - begun) * 1000
        cursor = page["next_cursor"]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--rebuild", type=int, default=50_000, help="events (0: skip)")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--database-url", default="", help="default: a SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'view.db'}"
        database = Database(DatabaseUrl.parse(url, "gateway"))
        view = GatewayView(database)
        view.drop()
        print(f"engine: {database.url.kind}")
        build(view, args.tickets)
        print(f"queries with {args.tickets:,} tickets ({args.rounds} calls each, in process):")
        asyncio.run(measure_queries(view, args.rounds))
        database.close()
    if args.rebuild:
        asyncio.run(rebuild_from_topics(args.rebuild))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
