"""What applying one consumed batch costs three consumers, without a broker: the notifier
requesting confirmations for opened tickets, the gateway's view applying a ticket's first
three events, and the sla-timer's due index taking in new clocks. CPU and wall ms per
ticket (or clock) on PostgreSQL, best of `--repeat` runs of `--rounds` batches.

    .venv/bin/python -m bench.batch_apply [--batch 500] [--rounds 6] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
from bench.notifier_dispatch import ticket_opened
from services.gateway.tests.view_messages import opened, started, triaged

from servicedesk_contracts.messages import Calendar
from servicedesk_gateway.view.store import GatewayView
from servicedesk_notifier.application import Notifier
from servicedesk_runtime.consumer import read_ahead
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.store import ServiceStore
from servicedesk_sla_timer.domain import RESPONSE, SlaClock
from servicedesk_sla_timer.due_timers import DueTimers

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
Round = Callable[[int], Callable[[], None]]
"""Prepares round n's batch outside the clock and returns the work that is timed."""


@contextmanager
def schema_for(service: str) -> Iterator[DatabaseUrl]:
    schema = f"bench{uuid.uuid4().hex[:6]}_{service.replace('-', '_')}"
    yield DatabaseUrl.parse(f"{POSTGRES}?schema={schema}", service)
    with psycopg.connect(POSTGRES, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def store_for(service: str) -> Iterator[tuple[Database, ServiceStore]]:
    """A service's database and event store in a schema of their own, dropped after."""
    with schema_for(service) as url:
        database, store = Database(url), ServiceStore(url, service)
        try:
            yield database, store
        finally:
            store.close()
            database.close()


def timed(rounds: int, batch: int, prepare: Round) -> tuple[float, float]:
    """(CPU, wall) ms per item over `rounds` batches."""
    cpu = wall = 0.0
    for n in range(rounds):
        work = prepare(n)
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        work()
        cpu += time.process_time() - cpu_start
        wall += time.perf_counter() - wall_start
    return 1000 * cpu / (rounds * batch), 1000 * wall / (rounds * batch)


def notifier(rounds: int, batch: int) -> tuple[float, float]:
    with store_for("notifier") as (_, store):
        handlers = Notifier("oncall@example.com").handlers()

        def prepare(n: int) -> Callable[[], None]:
            messages = [ticket_opened(n * batch + i) for i in range(batch)]

            def work() -> None:
                uow = store.unit_of_work()
                read_ahead(uow, [(x, handlers[x.event_type]) for x in messages])
                for message in messages:
                    handlers[message.event_type](message, uow)
                    uow.mark_applied(message.event_id)
                uow.commit()

            return work

        return timed(rounds, batch, prepare)


def gateway_view(rounds: int, batch: int) -> tuple[float, float]:
    with schema_for("gateway") as url:
        database = Database(url)
        view = GatewayView(database)

        def prepare(n: int) -> Callable[[], None]:
            tickets = [opened(n * batch + i) for i in range(batch)]
            first_three = [
                message
                for ticket in tickets
                for message in (ticket, triaged(ticket, "P2"), started(ticket, timedelta(hours=4)))
            ]

            def work() -> None:
                view.apply(*first_three)

            return work

        try:
            return timed(rounds, batch, prepare)
        finally:
            database.close()


def due_index(rounds: int, batch: int) -> tuple[float, float]:
    with store_for("sla-timer") as (database, store):
        due = DueTimers(database, store)
        danish = Calendar(timezone="Europe/Copenhagen", always_open=True)

        def prepare(n: int) -> Callable[[], None]:
            uow = store.unit_of_work()
            for i in range(batch):
                clock = SlaClock(ticket_id=uuid.uuid4(), kind=RESPONSE)
                clock.note_triage(f"SD-{i:06d}", "P2", START + timedelta(minutes=i), uuid.uuid4())
                clock.start(danish, {"P2": 240}, ["awaiting_reply"], [0.5, 0.75])
                uow.add(clock)
            uow.commit()  # as the consumer commits them, before the index follows

            def work() -> None:
                while due.catch_up():
                    pass

            return work

        return timed(rounds, batch, prepare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for label, run in (
        ("notifier: opened tickets requested", notifier),
        ("gateway view: first three events", gateway_view),
        ("sla-timer due index: new clocks", due_index),
    ):
        results = [run(args.rounds, args.batch) for _ in range(args.repeat)]
        cpu, wall = min(results)
        print(f"{label:38} CPU {cpu:.3f} ms/item  wall {wall:.3f} ms/item  (best of {args.repeat})")


if __name__ == "__main__":
    main()
