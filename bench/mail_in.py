"""Mail-in benchmark: mails accepted per second by intake's SMTP listener, and the latency
from SMTP DATA to the ticket's TicketOpened on the tickets topic.

Starts the Tansu broker, intake (with its listener) and billing as processes, registers an
agreement whose mail domain is the senders', then delivers N mails over C concurrent SMTP
connections (each connection sends its mails one after the other, as a mail server
delivering a queue does), and reads TicketOpened to match each mail by its Message-ID.
Runs on the embedded stack (SQLite) and, when reachable, on PostgreSQL.

    .venv/bin/python -u -m bench.mail_in [--mails 1000] [--connections 4] [--rate 0]

`--rate 0` delivers as fast as the listener accepts (throughput); `--rate 20` delivers 20
mails a second over all connections (latency of one mail through intake).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import smtplib
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import httpx
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from bench.pipeline import POSTGRES, drop_schemas, peak_rss_mb
from prometheus_client.parser import text_string_to_metric_families

from servicedesk_contracts import topics
from servicedesk_runtime.tansu import EmbeddedBroker, free_port
from servicedesk_stack.demo import provider_z_premium
from servicedesk_stack.stack import Stack, StackConfig

SERVICES = ("intake", "billing")
AGREEMENT = uuid.UUID("00000000-0000-4000-8000-0000000000bf")


def mail(n: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Bench User {n} <user{n}@bench.example>"
    message["To"] = "servicedesk@example.com"
    message["Subject"] = f"Request {n}: the nightly backup failed"
    message["Message-ID"] = f"<bench-{n}-{uuid.uuid4().hex}@bench.example>"
    message.set_content("The nightly backup failed again.\n\n" + "Log line.\n" * 40)
    return message


def register(bootstrap: str) -> None:
    terms = provider_z_premium("Bench Ltd")
    terms["mail"] = {"email_domains": ["bench.example"], "impact": "medium", "urgency": "low"}
    terms["mail"]["language"] = "en"

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        command = {
            "event_id": str(uuid.uuid4()),
            "event_type": "RegisterAgreement",
            "producer": "bench",
            "occurred_at": datetime.now(UTC).isoformat(),
            "subject_id": str(AGREEMENT),
            "data": terms,
        }
        await producer.send_and_wait(topics.BILLING_COMMANDS, json.dumps(command).encode())
        await producer.stop()

    asyncio.run(send())


def agreements_consumed(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "servicedesk_messages_consumed_total"
        and sample.labels.get("topic") == topics.AGREEMENTS
    )


def deliver(port: int, mails: list[EmailMessage], sent_at: dict[str, float], rate: float) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        started = time.perf_counter()
        for number, message in enumerate(mails):
            sent_at[str(message["Message-ID"])] = time.perf_counter()
            client.send_message(message)
            if rate:
                time.sleep(max(started + (number + 1) / rate - time.perf_counter(), 0))


async def collect(bootstrap: str, sent_at: dict[str, float], total: int) -> dict[str, float]:
    consumer = AIOKafkaConsumer(
        topics.TICKETS,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    latencies: dict[str, float] = {}
    deadline = time.perf_counter() + 600
    try:
        while len(latencies) < total and time.perf_counter() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    if dict(record.headers).get("event_type") != b"TicketOpened":
                        continue
                    message_id = json.loads(record.value or b"{}")["data"].get("message_id")
                    if message_id in sent_at and message_id not in latencies:
                        latencies[message_id] = now - sent_at[message_id]
    finally:
        await consumer.stop()
    return latencies


def run_once(stack: Stack, port: int, total: int, connections: int, rate: float) -> None:
    bootstrap = stack.config.bootstrap
    sent_at: dict[str, float] = {}
    mails = [mail(n) for n in range(total)]
    shares = [mails[c::connections] for c in range(connections)]
    opened: dict[str, float] = {}
    collector = threading.Thread(
        target=lambda: opened.update(asyncio.run(collect(bootstrap, sent_at, total)))
    )
    collector.start()
    started = time.perf_counter()
    senders = [
        threading.Thread(target=deliver, args=(port, share, sent_at, rate / connections))
        for share in shares
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    accepted_seconds = time.perf_counter() - started
    collector.join()
    elapsed = time.perf_counter() - started
    values = sorted(opened.values())
    quantile = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
    print(
        f"  {total} mails over {connections} connections: accepted {total / accepted_seconds:7.1f} "
        f"mails/s; {len(values)} tickets opened, {len(values) / elapsed:7.1f} tickets/s; "
        f"DATA->TicketOpened p50 {quantile[49] * 1000:7.1f} ms  p95 {quantile[94] * 1000:7.1f} ms  "
        f"p99 {quantile[98] * 1000:7.1f} ms"
    )


def bench(label: str, database_url: str, total: int, connections: int, rate: float) -> None:
    with tempfile.TemporaryDirectory() as folder, EmbeddedBroker() as broker:
        mail_port = free_port()
        config = StackConfig(
            bootstrap=broker.bootstrap,
            data_dir=Path(folder),
            database_url=database_url,
            schema_prefix=f"bench{uuid.uuid4().hex[:6]}_",
            gateway_port=0,
            mail_port=mail_port,
            extra_env={"MAIL_PER_SENDER_PER_HOUR": "100000"},
        )
        stack = Stack(config)
        stack.start(SERVICES)
        try:
            stack.wait_ready(SERVICES)
            register(broker.bootstrap)
            deadline = time.monotonic() + 60
            while agreements_consumed(config.port_of("intake")) < 1:
                assert time.monotonic() < deadline, "intake never learnt the agreement"
                time.sleep(0.1)
            print(f"{label}:")
            run_once(stack, mail_port, total, connections, rate)
            memory = peak_rss_mb(stack)
        finally:
            stack.stop()
            if database_url:
                drop_schemas(database_url, config.schema_prefix)
    print("  peak RSS MB: " + ", ".join(f"{s} {v:.0f}" for s, v in memory.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rate", type=float, default=0, help="mails per second, 0: burst")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    if args.only != "postgres":
        bench("sqlite", "", args.mails, args.connections, args.rate)
    if args.only != "sqlite":
        try:
            psycopg.connect(POSTGRES, connect_timeout=3).close()
        except psycopg.OperationalError as error:
            print(f"postgres skipped: {error}")
            return
        bench("postgres", POSTGRES, args.mails, args.connections, args.rate)


if __name__ == "__main__":
    main()
