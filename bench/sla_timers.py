"""SLA timer benchmark: deadline arithmetic, and the due-time table under 1,000,000 open
clocks (PostgreSQL): its size, the time to claim due timers, and how late breaches fire.

    .venv/bin/python bench/sla_timers.py [--open-clocks 1000000] [--firing 5000]
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from servicedesk_contracts.messages import Calendar
from servicedesk_runtime.clock import SystemClock
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.store import ServiceStore
from servicedesk_sla_timer.application import SlaTimer
from servicedesk_sla_timer.business_time import BusinessCalendar
from servicedesk_sla_timer.domain import RESPONSE, SlaClock
from servicedesk_sla_timer.due_timers import DueTimers
from servicedesk_stack.demo import provider_r_medium, provider_v_danish

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def bench_arithmetic(samples: int = 20_000) -> None:
    random.seed(7)
    starts = [
        datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=random.randrange(2 * 366 * 1440))
        for _ in range(samples)
    ]
    for label, terms in (("Danish V", provider_v_danish()), ("Dutch R", provider_r_medium())):
        calendar = BusinessCalendar(Calendar.model_validate(terms["calendar"]))
        for what, compute in (
            ("+8 working hours", lambda s, c=calendar: c.add_minutes(s, 480)),
            ("+2 working days", lambda s, c=calendar: c.add_working_days(s, 2)),
            (
                "minutes between +3 days",
                lambda s, c=calendar: c.minutes_between(s, s + timedelta(days=3)),
            ),
        ):
            started = time.perf_counter()
            for start in starts:
                compute(start)
            rate = samples / (time.perf_counter() - started)
            print(f"arithmetic  {label:9} {what:24} {rate:10,.0f} /s")


def fill(database: Database, table: str, rows: int) -> float:
    """Open clocks due far in the future: the load the table carries."""
    started = time.perf_counter()
    with database.transaction() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (clock_id, timer, due_ms) "
            "SELECT md5(g::text), 'breach', 4102444800000 + g FROM generate_series(1, ?) g",
            (rows,),
        )
    return time.perf_counter() - started


def start_due_clocks(store: ServiceStore, count: int, spread: timedelta) -> None:
    """Real clocks (24x7, no warnings) due within `spread` from now."""
    calendar = Calendar(timezone="UTC", always_open=True)
    now = datetime.now(UTC)
    uow = store.unit_of_work()
    for n in range(count):
        clock = SlaClock(ticket_id=uuid.uuid4(), kind=RESPONSE)
        opened = now - timedelta(minutes=1) + spread * n / count
        clock.note_triage(f"SD-{n:06d}", "P1", opened, uuid.uuid4())
        clock.start(calendar, {"P1": 1.0}, [], [])
        uow.add(clock)
        if n % 500 == 499:  # a consumer batch's size; one huge insert stalled psycopg
            uow.commit()
    uow.commit()


def bench_table(open_clocks: int, firing: int) -> None:
    schema = f"bench_sla_{uuid.uuid4().hex[:6]}"
    url = DatabaseUrl.parse(f"{POSTGRES}?schema={schema}", "sla-timer")
    database = Database(url)
    store = ServiceStore(url, "sla-timer")
    due = DueTimers(database, store)
    timer = SlaTimer(store, due, SystemClock())
    try:
        seconds = fill(database, due.timers, open_clocks)
        with database.transaction() as cursor:
            cursor.execute("SELECT pg_total_relation_size(?)", (due.timers.replace('"', ""),))
            size = cursor.fetchone()[0]  # type: ignore[index]
        print(
            f"table       {open_clocks:,} open clocks inserted in {seconds:.1f} s, "
            f"{size / 2**20:.0f} MiB with its index"
        )
        claims = []
        for _ in range(50):
            started = time.perf_counter()
            with due.claim_due(datetime.now(UTC)):
                pass
            claims.append(time.perf_counter() - started)
        print(
            f"claim       nothing due among {open_clocks:,}: p50 "
            f"{statistics.median(claims) * 1000:.2f} ms, max {max(claims) * 1000:.2f} ms"
        )

        spread = timedelta(seconds=20)
        started = time.perf_counter()
        start_due_clocks(store, firing, spread)
        print(
            f"clocks      {firing:,} clocks started in {time.perf_counter() - started:.1f} s "
            f"(500 per transaction), due over the next {spread.seconds} s"
        )
        stop = threading.Event()

        def fire() -> None:
            while not stop.is_set():
                timer.fire_due_timers()
                stop.wait(0.25)

        firing_thread = threading.Thread(target=fire)
        firing_thread.start()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with database.transaction() as cursor:
                cursor.execute(f"SELECT COUNT(*) FROM {due.timers} WHERE due_ms < 4102444800000")
                left = cursor.fetchone()[0]  # type: ignore[index]
            if left == 0 and due.catch_up() == 0:
                break
            time.sleep(0.5)
        stop.set()
        firing_thread.join()
        lateness = sorted(late_seconds(store))
        quantiles = statistics.quantiles(lateness, n=100)
        print(
            f"breaches    {len(lateness):,} fired with {open_clocks:,} open clocks in the table: "
            f"late by p50 {quantiles[49] * 1000:.0f} ms, p99 {quantiles[98] * 1000:.0f} ms, "
            f"max {lateness[-1] * 1000:.0f} ms (tick every 250 ms)"
        )
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"memory      peak RSS of this process (store + timer): {rss:.0f} MiB")
    finally:
        store.close()
        database.close()
        with psycopg.connect(POSTGRES, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def late_seconds(store: ServiceStore) -> list[float]:
    notifications = store.process_recorder.select_notifications(1, 10_000_000)
    events = map(store.mapper.to_domain_event, notifications)
    return [
        (e.noticed_at - e.due_at).total_seconds()
        for e in events
        if isinstance(e, SlaClock.Breached)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open-clocks", type=int, default=1_000_000)
    parser.add_argument("--firing", type=int, default=5_000)
    args = parser.parse_args()
    bench_arithmetic()
    bench_table(args.open_clocks, args.firing)


if __name__ == "__main__":
    main()
