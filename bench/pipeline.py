"""Pipeline benchmark: tickets/s and latency from submit to SLA clock started, per hop.

Starts the Tansu broker and the services as processes (intake, triage, sla-timer and
billing; with `--all` also the notifier, with an SMTP sink, and the gateway), registers one
agreement, publishes N SubmitTicket requests on the inbound topic, and times each ticket
where it appears: `TicketOpened` (intake), `TicketTriaged` (triage), `SlaClockStarted`
(sla-timer), and prints how many batches each service applied per ticket and their mean
wall time (its own work; the rest of a hop is the broker holding a fetch and the relay).
With `--all` it then times how long the notifier (one confirmation mail per ticket at the
sink) and the gateway (every SLA message consumed) take to catch up. At the end it prints
the CPU per ticket of each service and of what they lean on (the broker, PostgreSQL, this
benchmark's own producer and consumer: on a small machine they share the cores), the
stored events and bytes per ticket of each service, and the services' peak memory.

    .venv/bin/python bench/pipeline.py [--tickets 1000] [--rate 0] [--only sqlite|postgres]
        [--all] [--profile DIR] [--fetch-wait-ms N]

`--rate 0` publishes the whole burst at once (latency then mostly measures the queue);
`--rate 100` publishes 100 tickets a second (latency of one ticket through the pipeline).
`--profile DIR` records every service with py-spy while the tickets flow and writes a
flame graph per service (`DIR/<service>.svg`) and its collapsed stacks (`.txt`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiosmtpd.controller import Controller
from prometheus_client.parser import text_string_to_metric_families

from servicedesk_contracts import topics
from servicedesk_contracts.messages import ticket_id_for_request
from servicedesk_runtime.tansu import EmbeddedBroker, free_port
from servicedesk_stack.demo import provider_z_premium
from servicedesk_stack.stack import Stack, StackConfig

CORE = ("intake", "triage", "sla-timer", "billing")
ALL = (*CORE, "notifier", "gateway")
AGREEMENT = uuid.UUID("00000000-0000-4000-8000-0000000000be")
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
HOPS = {  # where a ticket shows up -> the service that put it there
    "TicketOpened": "intake",
    "TicketTriaged": "triage",
    "SlaClockStarted": "sla-timer",
}


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


@dataclass
class Sightings:
    """When each ticket was submitted and first seen at each hop (perf_counter seconds)."""

    sent: dict[str, float] = field(default_factory=dict)
    seen: dict[str, dict[str, float]] = field(default_factory=lambda: {e: {} for e in HOPS})
    sla_records: int = 0
    rss_mb: list[dict[str, float]] = field(default_factory=list)
    """Resident memory of every service at each tenth of the clocks started."""

    def done(self, tickets: int) -> bool:
        return len(self.seen["SlaClockStarted"]) >= tickets


class MailCount:
    """An SMTP sink that only counts messages."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        self.count += 1
        return "250 OK"


async def run_once(stack: Stack, bootstrap: str, tickets: int, rate: float) -> dict[str, object]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    consumer = AIOKafkaConsumer(
        topics.TICKETS,
        topics.TRIAGE,
        topics.SLA,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    await register_agreement(producer)
    await asyncio.sleep(2)  # let the agreement reach triage and sla-timer first
    sightings = Sightings()
    # Read concurrently with publishing, so a ticket's latency is its own, not the bench's.
    collecting = asyncio.create_task(_collect(consumer, sightings, tickets, stack))
    started = time.perf_counter()
    for n in range(tickets):
        event_id, value = request(n)
        sightings.sent[str(ticket_id_for_request(event_id))] = time.perf_counter()
        await producer.send(topics.INBOUND, value, key=str(event_id).encode())
        if rate:
            await asyncio.sleep(max(started + (n + 1) / rate - time.perf_counter(), 0))
    await producer.flush()
    publish_seconds = time.perf_counter() - started
    await asyncio.wait_for(collecting, timeout=1800)
    sightings.rss_mb.append(memory_mb(stack))
    elapsed = time.perf_counter() - started
    await producer.stop()
    await consumer.stop()
    return {
        "sightings": sightings,
        "publish_seconds": publish_seconds,
        "elapsed": elapsed,
        "tickets_per_second": tickets / elapsed,
    }


async def register_agreement(producer: AIOKafkaProducer) -> None:
    register = {
        "event_id": str(uuid.uuid4()),
        "event_type": "RegisterAgreement",
        "producer": "bench",
        "occurred_at": datetime.now(UTC).isoformat(),
        "subject_id": str(AGREEMENT),
        "data": provider_z_premium("Bench Ltd"),
    }
    await producer.send_and_wait(topics.BILLING_COMMANDS, json.dumps(register).encode())


async def _collect(
    consumer: AIOKafkaConsumer, sightings: Sightings, tickets: int, stack: Stack
) -> None:
    while not sightings.done(tickets):
        batch = await consumer.getmany(timeout_ms=100)
        now = time.perf_counter()
        tenths = len(sightings.seen["SlaClockStarted"]) * 10 // tickets
        if tenths > len(sightings.rss_mb):
            sightings.rss_mb.append(memory_mb(stack))
        for records in batch.values():
            for record in records:
                if record.topic == topics.SLA:
                    sightings.sla_records += 1
                event_type = dict(record.headers).get("event_type", b"").decode()
                seen = sightings.seen.get(event_type)
                if seen is None:
                    continue
                subject = json.loads(record.value or b"{}")["subject_id"]
                if subject in sightings.sent and subject not in seen:
                    seen[subject] = now


def quantiles_ms(values: list[float]) -> str:
    if not values:
        return "no samples"
    cuts = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
    p50, p95, p99 = (cuts[k] * 1000 for k in (49, 94, 98))
    return f"p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  p99 {p99:7.1f} ms"


def report_latency(sightings: Sightings) -> None:
    previous = sightings.sent
    for event_type, service in HOPS.items():
        seen = sightings.seen[event_type]
        hop = [seen[t] - previous[t] for t in seen if t in previous]
        print(f"{'':9} hop {service:9} ({event_type:15}) {quantiles_ms(hop)}")
        previous = seen
    clocks = sightings.seen["SlaClockStarted"]
    total = [clocks[t] - sightings.sent[t] for t in clocks]
    print(f"{'':9} submit -> SlaClockStarted            {quantiles_ms(total)}")


def catch_up_seconds(stack: Stack, sightings: Sightings, sink: MailCount, tickets: int) -> None:
    """How long after the last clock started the notifier and the gateway were done."""
    last_clock = max(sightings.seen["SlaClockStarted"].values())
    waiting: dict[str, Callable[[], bool]] = {"notifier": lambda: sink.count >= tickets}
    gateway = f"http://127.0.0.1:{stack.config.port_of('gateway')}/metrics"
    waiting["gateway"] = lambda: consumed(gateway, topics.SLA) >= sightings.sla_records
    done: dict[str, float] = {}
    deadline = time.monotonic() + 600
    while len(done) < len(waiting) and time.monotonic() < deadline:
        for service, finished in waiting.items():
            if service not in done and finished():
                done[service] = time.perf_counter() - last_clock
        time.sleep(0.05)
    for service in waiting:
        lag = f"{done[service]:.2f} s" if service in done else "not within 600 s"
        print(f"{'':9} {service} caught up {lag} after the last clock started")


def consumed(metrics_url: str, topic: str) -> float:
    text = httpx.get(metrics_url, timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("servicedesk_messages_consumed_total{") and f'topic="{topic}"' in line
    )


def peak_rss_mb(stack: Stack) -> dict[str, float]:
    return memory_mb(stack, "VmHWM")


def memory_mb(stack: Stack, field: str = "VmRSS") -> dict[str, float]:
    """A line of /proc/PID/status of every service: VmRSS now, VmHWM its peak."""
    sizes = {}
    for service, process in stack.processes.items():
        status = Path(f"/proc/{process.pid}/status").read_text()
        line = next(row for row in status.splitlines() if row.startswith(field))
        sizes[service] = int(line.split()[1]) / 1024
    return sizes


def report_memory_growth(sightings: Sightings) -> None:
    """RSS at each tenth of the run: flat once warm, or growing with what went through."""
    for service in sightings.rss_mb[0] if sightings.rss_mb else ():
        steps = " ".join(f"{sample[service]:.0f}" for sample in sightings.rss_mb)
        print(f"{'':9} RSS MB at each tenth, {service:9}: {steps}")


def batches_applied(stack: Stack) -> dict[str, tuple[float, float]]:
    """Batches each service's consumer applied so far, and the seconds it took (from its
    `servicedesk_message_processing_seconds` histogram): with the hops above, what part of
    a hop is the service's own work and what part waiting (the broker, the relay)."""
    applied = {}
    for service in stack.processes:
        url = f"http://127.0.0.1:{stack.config.port_of(service)}/metrics"
        samples = {
            sample.name: sample.value
            for family in text_string_to_metric_families(httpx.get(url, timeout=10).text)
            if family.name == "servicedesk_message_processing_seconds"
            for sample in family.samples
        }
        applied[service] = (
            samples.get("servicedesk_message_processing_seconds_count", 0.0),
            samples.get("servicedesk_message_processing_seconds_sum", 0.0),
        )
    return applied


def report_batches(before: dict[str, tuple[float, float]], stack: Stack, tickets: int) -> None:
    parts = []
    for service, (count, seconds) in batches_applied(stack).items():
        batches, spent = count - before[service][0], seconds - before[service][1]
        if batches:
            parts.append(f"{service} {batches / tickets:.2f} x {1000 * spent / batches:.1f} ms")
    print(f"{'':9} batches a ticket x wall ms a batch: " + ", ".join(parts))


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """User and system CPU each service process has used so far."""
    return cpu_of({service: process.pid for service, process in stack.processes.items()})


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    """User and system CPU seconds of each process (0 for one that is gone)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            used[name] = 0.0
            continue
        used[name] = (int(fields[11]) + int(fields[12])) / ticks
    return used


def postgres_processes() -> dict[str, int]:
    """PostgreSQL's processes (its backends serve the services' connections)."""
    found = {}
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().startswith("postgres"):
                found[f"postgres:{comm.parent.name}"] = int(comm.parent.name)
        except OSError:
            continue
    return found


def outside_the_services(broker_pid: int, database_url: str) -> dict[str, float]:
    """CPU seconds so far of what the services lean on: the broker, PostgreSQL's live
    processes (a backend that ended meanwhile is not counted) and this benchmark (its
    producer and its consumer)."""
    used = {"broker": cpu_of({"broker": broker_pid})["broker"]}
    if database_url:
        used["postgres"] = sum(cpu_of(postgres_processes()).values())
    used["this benchmark"] = time.process_time()
    return used


def profile(stack: Stack, folder: Path, seconds: float) -> list[subprocess.Popen[bytes]]:
    """py-spy on every service for `seconds`: flame graphs and collapsed stacks."""
    folder.mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).parent / "py-spy")
    recorders = []
    for service, process in stack.processes.items():
        for kind, suffix in (("flamegraph", "svg"), ("raw", "txt")):
            recorders.append(
                subprocess.Popen(
                    [
                        *(spy, "record", "-p", str(process.pid), "-d", str(int(seconds))),
                        *("-r", "50", "--nonblocking", "-f", kind),
                        *("-o", str(folder / f"{service}.{suffix}")),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
    return recorders


def stored_per_ticket(
    database_url: str, config: StackConfig, services: tuple[str, ...], tickets: int
) -> None:
    """Events and bytes each service stored per ticket (PostgreSQL: every table of its
    schema with indexes and TOAST; SQLite: its file with the WAL)."""
    for service in services:
        schema = f"{config.schema_prefix}{service.replace('-', '_')}"
        if database_url:
            size, events, markers = _postgres_sizes(database_url, schema, service)
        else:
            size, events, markers = _sqlite_sizes(Path(config.database_for(service)[10:]), service)
        share = f"{100 * markers / events:4.0f}" if events else "   -"
        print(
            f"{'':9} stored {service:9} {size / tickets:8.0f} bytes/ticket  "
            f"{events / tickets:5.1f} events/ticket ({share} % Received markers)"
        )
        if database_url:
            largest = ", ".join(
                f"{table} {size / tickets:.0f}"
                for table, size in _postgres_tables(database_url, schema)[:4]
            )
            print(f"{'':9}        {'':9} largest, bytes/ticket: {largest}")


def _events_table(service: str) -> str:
    return f"{service.replace('-', '_')}_events"


def _postgres_sizes(url: str, schema: str, service: str) -> tuple[int, int, int]:
    with psycopg.connect(url, autocommit=True) as connection:
        for (table,) in connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall():  # dead rows are not what a ticket costs
            connection.execute(f'VACUUM "{schema}"."{table}"')
        size = connection.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
            "AND c.relkind IN ('r', 'm')",
            (schema,),
        ).fetchone()
        table = f'"{schema}".{_events_table(service)}'
        events = connection.execute(
            f"SELECT count(*), count(*) FILTER (WHERE topic LIKE %s) FROM {table}",
            ("%Received.Applied",),
        ).fetchone()
    assert size is not None
    assert events is not None
    return int(size[0]), int(events[0]), int(events[1])


def _postgres_tables(url: str, schema: str) -> list[tuple[str, int]]:
    """The schema's tables (with their indexes and TOAST), largest first."""
    with psycopg.connect(url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
            "AND c.relkind = 'r' ORDER BY 2 DESC",
            (schema,),
        ).fetchall()
    return [(str(name), int(size)) for name, size in rows]


def _sqlite_sizes(path: Path, service: str) -> tuple[int, int, int]:
    import sqlite3

    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with sqlite3.connect(path) as connection:
        row = connection.execute(
            "SELECT count(*), sum(topic LIKE ?) FROM stored_events",
            ("%Received.Applied",),
        ).fetchone()
    return size, int(row[0]), int(row[1] or 0)


def bench(label: str, database_url: str, args: argparse.Namespace) -> None:
    services = ALL if args.all else CORE
    sink = MailCount()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    with tempfile.TemporaryDirectory() as folder, EmbeddedBroker() as broker:
        config = StackConfig(
            bootstrap=broker.bootstrap,
            data_dir=Path(folder),
            database_url=database_url,
            schema_prefix=f"bench{uuid.uuid4().hex[:6]}_",
            gateway_port=free_port(),
            smtp_port=smtp.port,
            extra_env=(
                {"KAFKA_FETCH_WAIT_MS": str(args.fetch_wait_ms)} if args.fetch_wait_ms else {}
            ),
        )
        stack = Stack(config)
        stack.start(services)
        recorders: list[subprocess.Popen[bytes]] = []
        try:
            stack.wait_ready(services)
            if args.profile:
                recorders = profile(stack, Path(args.profile), args.profile_seconds)
            cpu_before, batches_before = cpu_seconds(stack), batches_applied(stack)
            outside_before = outside_the_services(broker.pid, database_url)
            result = asyncio.run(run_once(stack, broker.bootstrap, args.tickets, args.rate))
            sightings = result["sightings"]
            assert isinstance(sightings, Sightings)
            print(
                f"{label:9} {args.tickets} tickets  {result['tickets_per_second']:7.1f} tickets/s "
                f"submit->clock started (publishing took {result['publish_seconds']:.2f} s, "
                f"rate {'burst' if not args.rate else args.rate})"
            )
            report_latency(sightings)
            report_batches(batches_before, stack, args.tickets)
            if args.all:
                catch_up_seconds(stack, sightings, sink, args.tickets)
            cpu = {s: v - cpu_before[s] for s, v in cpu_seconds(stack).items()}
            print(
                f"{'':9} CPU ms/ticket: "
                + ", ".join(f"{s} {1000 * v / args.tickets:.2f}" for s, v in cpu.items())
            )
            outside = outside_the_services(broker.pid, database_url)
            print(
                f"{'':9} CPU ms/ticket outside the services: "
                + ", ".join(
                    f"{name} {1000 * (v - outside_before[name]) / args.tickets:.2f}"
                    for name, v in outside.items()
                )
            )
            memory = peak_rss_mb(stack)
            print(f"{'':9} peak RSS MB: " + ", ".join(f"{s} {v:.0f}" for s, v in memory.items()))
            report_memory_growth(sightings)
            for recorder in recorders:
                recorder.wait()
            stack.stop()
            stored_per_ticket(database_url, config, services, args.tickets)
        finally:
            stack.stop()
            smtp.stop()
            if database_url:
                drop_schemas(database_url, config.schema_prefix, services)


def drop_schemas(url: str, prefix: str, services: tuple[str, ...]) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        for service in services:
            connection.execute(
                f'DROP SCHEMA IF EXISTS "{prefix}{service.replace("-", "_")}" CASCADE'
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0, help="tickets per second, 0: burst")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--all", action="store_true", help="also the notifier and gateway")
    parser.add_argument("--profile", help="folder for py-spy flame graphs of every service")
    parser.add_argument("--profile-seconds", type=float, default=20)
    parser.add_argument(
        "--fetch-wait-ms", type=int, help="the services' KAFKA_FETCH_WAIT_MS (default: theirs)"
    )
    args = parser.parse_args()
    if args.only != "postgres":
        bench("sqlite", "", args)
    if args.only != "sqlite":
        try:
            psycopg.connect(POSTGRES, connect_timeout=3).close()
        except psycopg.OperationalError as error:
            print(f"postgres  skipped: {error}")
            return
        bench("postgres", POSTGRES, args)


if __name__ == "__main__":
    main()
