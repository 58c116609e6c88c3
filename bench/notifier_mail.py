"""Notifier under faults: every confirmation mailed once, or repeated with its Message-ID.

Starts the Tansu broker, intake and the notifier as processes and an SMTP sink, publishes N
SubmitTicket requests (two with a line break in the subject), kills -9 the notifier while
mail flows and starts it again, takes the mail server away for a while, then waits until
every delivery is recorded in the notifier's store and counts the mailbox:

- mails per recipient (one ticket each) against mails per Message-ID: a repeat that kept
  its Message-ID is a recognisable at-least-once resend; any other repeat is a duplicate;
- the drain time from the last request published to the last delivery recorded.

    .venv/bin/python bench/notifier_mail.py [--tickets 400] [--kills 3] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from aiokafka import AIOKafkaProducer
from eventsourcing.utils import get_topic

from servicedesk_contracts import topics
from servicedesk_notifier.domain import Delivery
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.kafka import ensure_topics
from servicedesk_runtime.store import ServiceStore
from servicedesk_runtime.tansu import EmbeddedBroker, free_port
from servicedesk_stack.mail_sink import MailSink
from servicedesk_stack.stack import Stack, StackConfig

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
OUTCOMES = [get_topic(Delivery.Dispatched), get_topic(Delivery.Failed)]


def request(n: int, bad: bool) -> tuple[bytes, bytes]:
    event_id = str(uuid.uuid4())
    subject = f"Request {n}\nBcc: everyone@example.com" if bad else f"Request {n}"
    document = {
        "event_id": event_id,
        "event_type": "SubmitTicket",
        "producer": "bench",
        "occurred_at": datetime.now(UTC).isoformat(),
        "subject_id": event_id,
        "data": {
            "agreement_id": str(uuid.uuid4()),
            "reporter_email": f"user{n}@example.com",
            "reporter_name": f"User {n}",
            "organisation": "Bench",
            "channel": "email",
            "subject": subject,
            "body": "Something is wrong",
            "category": "incident",
            "impact": "high",
            "urgency": "medium",
        },
    }
    return event_id.encode(), json.dumps(document).encode()


async def publish(bootstrap: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topics.INBOUND, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def recorded(store: ServiceStore) -> int:
    found = store.process_recorder.select_notifications(1, 1_000_000, topics=OUTCOMES)
    return len({n.originator_id for n in found})


def wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


def run(tickets: int, kills: int, database_url: str) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-notifier-"))
    port = free_port()
    mailboxes = [MailSink(port)]
    mailboxes[0].start()

    def mails() -> list[object]:
        return [mail for box in mailboxes for mail in box.messages]

    with EmbeddedBroker() as broker:
        prefix = f"b{uuid.uuid4().hex[:6]}_" if database_url else ""
        config = StackConfig(
            bootstrap=broker.bootstrap,
            data_dir=data_dir,
            database_url=database_url,
            smtp_port=port,
            gateway_port=free_port(),
            schema_prefix=prefix,
            extra_env={"SMTP_RETRY_MAX_WAIT_SECONDS": "2", "SMTP_RETRY_ATTEMPTS": "30"},
        )
        stack = Stack(config)
        asyncio.run(ensure_topics(broker.bootstrap))
        stack.start(("intake", "notifier"))
        stack.wait_ready(("intake", "notifier"))
        url = DatabaseUrl.parse(config.database_for("notifier"), "notifier")
        Database(url).close()  # the schema exists
        store = ServiceStore(url, "notifier")
        bad = {tickets // 3, 2 * tickets // 3}
        records = [request(n, n in bad) for n in range(tickets)]
        asyncio.run(publish(broker.bootstrap, records))
        published = time.monotonic()
        for k in range(kills):
            target = (k + 1) * tickets // (kills + 2)
            wait(lambda t=target: len(mails()) >= t, 120, f"{target} mails")
            stack.kill("notifier")
            if k == 0:  # the mail server goes away while the notifier is down
                mailboxes[-1].stop()
            stack.start_service("notifier")
            if k == 0:
                time.sleep(3)  # the notifier retries meanwhile (a bench, not a test)
                mailboxes.append(MailSink(port))
                mailboxes[-1].start()
        wait(lambda: recorded(store) == tickets, 300, "every delivery recorded")
        drained = time.monotonic() - published
        stack.stop()
        store.close()
    mailboxes[-1].stop()  # the others were stopped on the way
    if database_url:
        with psycopg.connect(database_url, autocommit=True) as connection:
            for service in ("intake", "notifier"):
                connection.execute(f'DROP SCHEMA IF EXISTS "{prefix}{service}" CASCADE')
    received = mails()
    per_recipient = Counter(str(m["To"]) for m in received)  # type: ignore[index]
    per_message_id = Counter(str(m["Message-ID"]) for m in received)  # type: ignore[index]
    repeats = len(received) - len(per_recipient)
    unexplained = len(per_message_id) - len(per_recipient)
    print(
        f"notifier ({'postgres' if database_url else 'sqlite'}): {tickets} tickets, "
        f"{kills} kills -9, SMTP down once: {len(received)} mails to "
        f"{len(per_recipient)} recipients, {repeats} resent with the same Message-ID, "
        f"{unexplained} duplicates with another Message-ID; drained in {drained:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=400)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--postgres", action="store_true")
    arguments = parser.parse_args()
    run(arguments.tickets, arguments.kills, POSTGRES if arguments.postgres else "")


if __name__ == "__main__":
    main()
