"""Gateway benchmark: what storing each accepted command costs an HTTP request.

Every POST /tickets commits one small event (the command's JSON) to the gateway's store
before it answers 202: one transaction per request. This drives the real HTTP app (in
process, through httpx's ASGI transport, so the numbers are the app's and the store's) with
N requests, one at a time and 16 at once, against: no store (the command only handed to a
callable, as before the outbox), a SQLite file, and PostgreSQL when reachable.

    .venv/bin/python bench/gateway_accept.py [--requests 500]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from servicedesk_contracts import Message
from servicedesk_gateway.auth import parse_tokens
from servicedesk_gateway.http import create_http_app
from servicedesk_gateway.outbox import store_command
from servicedesk_gateway.view.store import GatewayView
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.store import ServiceStore

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
AGENT = {"Authorization": "Bearer bench"}
BODY = {
    "agreement_id": str(uuid.uuid4()),
    "reporter_email": "anna@acme.example",
    "reporter_name": "Anna",
    "organisation": "Acme",
    "subject": "Scanner offline",
    "body": "Hall 2",
    "category": "incident",
    "impact": "high",
    "urgency": "high",
}
Accept = Callable[[str, Message], Awaitable[None]]


async def drive(accept: Accept, requests: int, concurrency: int) -> tuple[float, float]:
    """(requests per second, median latency in ms)."""
    with tempfile.TemporaryDirectory() as directory:
        url = DatabaseUrl.parse(f"sqlite:///{directory}/view.db", "gateway")
        view = GatewayView(Database(url))
        return await _drive(view, accept, requests, concurrency)


async def _drive(
    view: GatewayView, accept: Accept, requests: int, concurrency: int
) -> tuple[float, float]:
    app = create_http_app(
        view.queries, accept, parse_tokens("bench:agent"), lambda: datetime.now(UTC)
    )
    latencies: list[float] = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:

        async def one() -> None:
            started = time.perf_counter()
            response = await client.post("/tickets", json=BODY, headers=AGENT)
            assert response.status_code == 202, response.text
            latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        for first in range(0, requests, concurrency):
            await asyncio.gather(*(one() for _ in range(min(concurrency, requests - first))))
        elapsed = time.perf_counter() - started
    return requests / elapsed, statistics.median(latencies) * 1000


async def nothing(topic: str, message: Message) -> None:
    return None


def storing(store: ServiceStore) -> Accept:
    async def accept(topic: str, message: Message) -> None:
        await store_command(store, topic, message)

    return accept


async def main(requests: int) -> None:
    targets: list[tuple[str, Accept, ServiceStore | None]] = [("no store", nothing, None)]
    with tempfile.TemporaryDirectory() as directory:
        sqlite = ServiceStore(
            DatabaseUrl.parse(f"sqlite:///{Path(directory) / 'gateway.db'}", "gateway"), "gw"
        )
        targets.append(("SQLite file", storing(sqlite), sqlite))
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        try:
            with psycopg.connect(POSTGRES, autocommit=True) as connection:
                connection.execute(f'CREATE SCHEMA "{schema}"')
        except psycopg.OperationalError:
            print("no PostgreSQL: skipped")
            schema = ""
        if schema:
            postgres = ServiceStore(DatabaseUrl.parse(f"{POSTGRES}?schema={schema}", "gw"), "gw")
            targets.append(("PostgreSQL", storing(postgres), postgres))
        try:
            for name, accept, _ in targets:
                for concurrency in (1, 16):
                    rate, median = await drive(accept, requests, concurrency)
                    print(
                        f"{name:12} {concurrency:2} at once: {rate:7.0f} requests/s, "
                        f"median {median:6.2f} ms",
                        flush=True,
                    )
        finally:
            for _, _, store in targets:
                if store is not None:
                    store.close()
            if schema:
                with psycopg.connect(POSTGRES, autocommit=True) as connection:
                    connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    asyncio.run(main(parser.parse_args().requests))
