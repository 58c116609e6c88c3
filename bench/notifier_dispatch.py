"""The notifier's dispatcher alone: mails/s, CPU per mail and SMTP connections per mail.

Requests N ticket confirmations in the notifier's store the way its consumer does (one
committed batch; the CPU of rendering and requesting is printed on its own line), then runs
the dispatcher against an SMTP sink in another process (so the CPU measured here is the
dispatcher's only) until every outcome is recorded. The sink counts connections and
mails; `--drop-every K` makes it answer 421 and close the connection after K mails on it,
as a server that ends long sessions does.

    .venv/bin/python bench/notifier_dispatch.py [--mails 1000] [--only sqlite|postgres]
        [--drop-every 0] [--record-every 10]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
import uuid
from datetime import UTC, datetime
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import psycopg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from eventsourcing.utils import get_topic

from servicedesk_contracts import messages as m
from servicedesk_notifier.application import Notifier
from servicedesk_notifier.dispatch import Dispatcher
from servicedesk_notifier.dispatch_log import DispatchLog
from servicedesk_notifier.domain import Delivery
from servicedesk_notifier.smtp import SmtpMailer
from servicedesk_runtime.consumer import read_ahead
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.store import ServiceStore
from servicedesk_runtime.tansu import free_port

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
OUTCOMES = [get_topic(Delivery.Dispatched), get_topic(Delivery.Failed)]


class _Counter:
    """Counts mails in the sink process (the SMTP session answers DATA with 250)."""

    def __init__(self, mails: Synchronized[int]) -> None:
        self.mails = mails

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.mails.get_lock():
            self.mails.value += 1
        return "250 OK"


def _sink(
    port: int,
    drop_every: int,
    counts: tuple[Synchronized[int], Synchronized[int]],
    listening: EventType,
) -> None:
    """The sink process: serves until terminated."""
    connections, mails = counts

    class Session(SMTP):
        served = 0

        def connection_made(self, transport: Any) -> None:
            with connections.get_lock():
                connections.value += 1
            super().connection_made(transport)

        async def smtp_MAIL(self, arg: str) -> None:  # noqa: N802
            if drop_every and self.served >= drop_every:
                await self.push("421 4.7.0 Too many mails on one connection, closing")
                self.transport.close()  # type: ignore[union-attr]
                return
            self.served += 1
            await super().smtp_MAIL(arg)

    class Sink(Controller):
        def factory(self) -> SMTP:
            return Session(self.handler)

    Sink(_Counter(mails), hostname="127.0.0.1", port=port).start()
    connections.value = 0  # the controller connected once to see it is up
    listening.set()
    while True:
        time.sleep(3600)


def ticket_opened(n: int) -> m.TicketOpened:
    opened: m.TicketOpened = m.TicketOpened.create(
        producer="intake",
        subject_id=uuid.uuid4(),
        data={
            "agreement_id": uuid.uuid4(),
            "reporter_email": f"user{n}@example.com",
            "reporter_name": f"User {n}",
            "organisation": "Bench",
            "channel": "email",
            "subject": f"Request {n}",
            "body": "Something is wrong",
            "category": "incident",
            "impact": "high",
            "urgency": "medium",
            "reference": f"SD-{n:06d}",
            "received_at": datetime.now(UTC),
        },
    )
    return opened


def request(store: ServiceStore, mails: int) -> float:
    """Requests `mails` confirmations in one batch; returns CPU ms per mail."""
    handler = Notifier("oncall@example.com").handlers()["TicketOpened"]
    opened = [ticket_opened(n) for n in range(mails)]
    started = time.process_time()
    uow = store.unit_of_work()
    read_ahead(uow, [(message, handler) for message in opened])  # as the consumer does
    for message in opened:
        handler(message, uow)
    uow.commit()
    return (time.process_time() - started) * 1000 / mails


def recorded(store: ServiceStore) -> int:
    return len(store.process_recorder.select_notifications(1, 1_000_000, topics=OUTCOMES))


async def dispatch_all(dispatcher: Dispatcher, mails: int) -> None:
    """Runs the dispatcher until it recorded `mails` outcomes (counted by its own hook, so
    that the measurement costs no queries)."""
    stop, done = asyncio.Event(), asyncio.Event()
    count = 0

    def on_recorded() -> None:
        nonlocal count
        count += 1
        if count >= mails:
            done.set()

    dispatcher.on_recorded = on_recorded
    task = asyncio.create_task(dispatcher.run(stop))
    finished = asyncio.create_task(done.wait())
    await asyncio.wait([task, finished], timeout=600, return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    finished.cancel()
    await task
    if count < mails:
        raise TimeoutError(f"the dispatcher recorded {count} of {mails} outcomes")


def run(kind: str, url: str, mails: int, drop_every: int, record_every: int) -> None:
    spawn = multiprocessing.get_context("spawn")
    connections, delivered = spawn.Value("i", 0), spawn.Value("i", 0)
    port = free_port()
    listening = spawn.Event()
    sink = spawn.Process(target=_sink, args=(port, drop_every, (connections, delivered), listening))
    sink.start()
    if not listening.wait(60):
        raise TimeoutError("the SMTP sink did not start")
    database = Database(DatabaseUrl.parse(url, "notifier"))
    store = ServiceStore(DatabaseUrl.parse(url, "notifier"), "notifier")
    try:
        requesting = request(store, mails)
        mailer = SmtpMailer("127.0.0.1", port, "servicedesk@example.com")
        dispatcher = Dispatcher(
            store=store, log=DispatchLog(database), mailer=mailer, record_every=record_every
        )
        wall, cpu = time.perf_counter(), time.process_time()
        asyncio.run(dispatch_all(dispatcher, mails))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert recorded(store) == mails, "every outcome is stored"
    finally:
        store.close()
        database.close()
        sink.terminate()
        sink.join()
    print(
        f"notifier dispatch ({kind}, record every {record_every}, drop every "
        f"{drop_every or '-'}): {mails} mails in "
        f"{wall:.2f} s = {mails / wall:.0f} mails/s, {cpu * 1000 / mails:.2f} ms CPU per "
        f"mail, {connections.value} SMTP connections, {delivered.value} mails at the sink"
    )
    print(f"{'':9} requesting (render + store, one batch): {requesting:.2f} ms CPU per mail")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mails", type=int, default=1000)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--drop-every", type=int, default=0)
    parser.add_argument("--record-every", type=int, default=10)
    arguments = parser.parse_args()
    sizes = (arguments.mails, arguments.drop_every, arguments.record_every)
    if arguments.only != "postgres":
        folder = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
        run("sqlite", f"sqlite:///{folder / 'notifier.db'}", *sizes)
    if arguments.only != "sqlite":
        schema = f"b{uuid.uuid4().hex[:8]}_notifier"
        try:
            run("postgres", f"{POSTGRES}?schema={schema}", *sizes)
        finally:
            with psycopg.connect(POSTGRES, autocommit=True) as connection:
                connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
