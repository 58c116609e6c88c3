"""Pipeline benchmark: tickets/s and latency from submit to SLA clock started.

Starts the Tansu broker and intake, triage, sla-timer and billing as processes, registers
one agreement, publishes N SubmitTicket requests on the inbound topic as fast as it can,
and measures when each ticket's SlaClockStarted appears on the SLA topic. Runs on the
embedded stack (SQLite) and, when reachable, on PostgreSQL.

    .venv/bin/python bench/pipeline.py [--tickets 1000] [--rate 0] [--only sqlite|postgres]

`--rate 0` publishes the whole burst at once (latency then mostly measures the queue);
`--rate 20` publishes 20 tickets a second (latency of one ticket through the pipeline).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from servicedesk_contracts import topics
from servicedesk_contracts.messages import ticket_id_for_request
from servicedesk_runtime.tansu import EmbeddedBroker
from servicedesk_stack.demo import provider_z_premium
from servicedesk_stack.stack import Stack, StackConfig

SERVICES = ("intake", "triage", "sla-timer", "billing")
AGREEMENT = uuid.UUID("00000000-0000-4000-8000-0000000000be")
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def request(n: int) -> tuple[uuid.UUID, bytes]:
    event_id = uuid.uuid4()
    document = {
        "event_id": str(event_id),
        "event_type": "SubmitTicket",
        "producer": "bench",
        "occurred_at": datetime.now(UTC).isoformat(),
        "subject_id": str(event_id),
        "data": {
            "agreement_id": str(AGREEMENT),
            "reporter_email": f"user{n}@example.com",
            "reporter_name": "Bench",
            "organisation": "Bench Ltd",
            "channel": "api",
            "subject": f"Ticket {n}",
            "body": "benchmark",
            "category": "incident",
            "impact": ["high", "medium", "low"][n % 3],
            "urgency": "medium",
        },
    }
    return event_id, json.dumps(document).encode()


async def run_once(bootstrap: str, tickets: int, rate: float) -> dict[str, float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    consumer = AIOKafkaConsumer(
        topics.SLA,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    register = {
        "event_id": str(uuid.uuid4()),
        "event_type": "RegisterAgreement",
        "producer": "bench",
        "occurred_at": datetime.now(UTC).isoformat(),
        "subject_id": str(AGREEMENT),
        "data": provider_z_premium("Bench Ltd"),
    }
    await producer.send_and_wait(topics.BILLING_COMMANDS, json.dumps(register).encode())
    await asyncio.sleep(2)  # let the agreement reach triage and sla-timer first
    sent_at: dict[str, float] = {}
    latencies: dict[str, float] = {}
    # Read concurrently with publishing, so a ticket's latency is its own, not the bench's.
    collecting = asyncio.create_task(_collect(consumer, sent_at, latencies, tickets))
    started = time.perf_counter()
    for n in range(tickets):
        event_id, value = request(n)
        sent_at[str(ticket_id_for_request(event_id))] = time.perf_counter()
        await producer.send(topics.INBOUND, value, key=str(event_id).encode())
        if rate:
            await asyncio.sleep(max(started + (n + 1) / rate - time.perf_counter(), 0))
    await producer.flush()
    publish_seconds = time.perf_counter() - started
    await asyncio.wait_for(collecting, timeout=600)
    elapsed = time.perf_counter() - started
    await consumer.stop()
    await producer.stop()
    values = sorted(latencies.values())
    quantile = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
    return {
        "tickets": float(len(values)),
        "publish_seconds": publish_seconds,
        "tickets_per_second": len(values) / elapsed,
        "p50_ms": quantile[49] * 1000,
        "p95_ms": quantile[94] * 1000,
        "p99_ms": quantile[98] * 1000,
    }


async def _collect(
    consumer: AIOKafkaConsumer,
    sent_at: dict[str, float],
    latencies: dict[str, float],
    tickets: int,
) -> None:
    while len(latencies) < tickets:
        batch = await consumer.getmany(timeout_ms=100)
        now = time.perf_counter()
        for records in batch.values():
            for record in records:
                if dict(record.headers).get("event_type") != b"SlaClockStarted":
                    continue
                subject = json.loads(record.value or b"{}")["subject_id"]
                if subject in sent_at and subject not in latencies:
                    latencies[subject] = now - sent_at[subject]


def peak_rss_mb(stack: Stack) -> dict[str, float]:
    peaks = {}
    for service, process in stack.processes.items():
        status = Path(f"/proc/{process.pid}/status").read_text()
        line = next(row for row in status.splitlines() if row.startswith("VmHWM"))
        peaks[service] = int(line.split()[1]) / 1024
    return peaks


def bench(label: str, database_url: str, tickets: int, rate: float) -> None:
    with tempfile.TemporaryDirectory() as folder, EmbeddedBroker() as broker:
        config = StackConfig(
            bootstrap=broker.bootstrap,
            data_dir=Path(folder),
            database_url=database_url,
            schema_prefix=f"bench{uuid.uuid4().hex[:6]}_",
            gateway_port=0,
        )
        stack = Stack(config)
        stack.start(SERVICES)
        try:
            stack.wait_ready(SERVICES)
            result = asyncio.run(run_once(broker.bootstrap, tickets, rate))
            memory = peak_rss_mb(stack)
        finally:
            stack.stop()
            if database_url:
                drop_schemas(database_url, config.schema_prefix)
    print(
        f"{label:9} {result['tickets']:.0f} tickets  "
        f"{result['tickets_per_second']:7.1f} tickets/s  "
        f"submit->clock started p50 {result['p50_ms']:7.1f} ms  p95 {result['p95_ms']:7.1f} ms  "
        f"p99 {result['p99_ms']:7.1f} ms  (publishing took {result['publish_seconds']:.2f} s)"
    )
    print(f"{'':9} peak RSS MB: " + ", ".join(f"{s} {v:.0f}" for s, v in memory.items()))


def drop_schemas(url: str, prefix: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        for service in SERVICES:
            connection.execute(
                f'DROP SCHEMA IF EXISTS "{prefix}{service.replace("-", "_")}" CASCADE'
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0, help="tickets per second, 0: burst")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    if args.only != "postgres":
        bench("sqlite", "", args.tickets, args.rate)
    if args.only != "sqlite":
        try:
            psycopg.connect(POSTGRES, connect_timeout=3).close()
        except psycopg.OperationalError as error:
            print(f"postgres  skipped: {error}")
            return
        bench("postgres", POSTGRES, args.tickets, args.rate)


if __name__ == "__main__":
    main()
