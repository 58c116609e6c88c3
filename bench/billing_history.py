"""Billing with a long month behind it: 100,000 time entries of one agreement stored
through billing's real store and handlers (in batches, as the consumer applies them), then
the month's statement issued by a freshly started store (a restarted service).

Prints the seconds to store the entries, to issue the statement after a restart, and to
record a late entry for the issued month after another restart, and the peak memory of
the restarted process. The statement engine
alone is timed by bench/statements.py.

    .venv/bin/python bench/billing_history.py [--entries 100000] [--engine sqlite postgres]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from servicedesk_billing.application import Billing
from servicedesk_contracts import Message
from servicedesk_contracts import messages as m
from servicedesk_runtime.clock import ManualClock
from servicedesk_runtime.database import DatabaseUrl
from servicedesk_runtime.store import ServiceStore

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
AGREEMENT = uuid.UUID("00000000-0000-4000-8000-00000000b111")
MONTH_START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
ISSUED_AT = datetime(2027, 1, 5, 9, 0, tzinfo=UTC)
BATCH = 500


def register() -> Message:
    data = {
        "customer": "Long Month Ltd",
        "plan": "R Medium",
        "billing": {"model": "monthly_invoice", "hourly_rate_cents": 9500},
    }
    command: Message = m.RegisterPlanAgreement.create(
        producer="crm", subject_id=AGREEMENT, data=data
    )
    return command


def time_logged(n: int) -> m.TimeLogged:
    ticket = uuid.uuid5(AGREEMENT, f"ticket:{n % 5000}")
    started = MONTH_START + timedelta(seconds=n * 20)  # 100,000 entries fit in November
    logged: m.TimeLogged = m.TimeLogged.create(
        producer="intake",
        subject_id=ticket,
        data={
            "agent": "mette",
            "started_at": started,
            "duration_minutes": 5 + n % 60,
            "work_type": "support",
            "billable": n % 20 != 0,
            "entry_id": uuid.uuid5(ticket, f"entry:{n}"),
            "reference": f"SD-{n % 5000:06d}",
            "agreement_id": AGREEMENT,
            "category": "incident",
        },
    )
    return logged


def apply(store: ServiceStore, messages: list[Message]) -> None:
    """One unit of work for the batch, as the consumer does."""
    handlers = Billing(ManualClock(ISSUED_AT)).handlers()
    uow = store.unit_of_work()
    for message in messages:
        handlers[message.event_type](message, uow)
        uow.mark_applied(message.event_id)
    uow.commit()


def fill(url: DatabaseUrl, entries: int) -> None:
    store = ServiceStore(url, "billing")
    apply(store, [register()])
    started = time.perf_counter()
    for first in range(0, entries, BATCH):
        apply(store, [time_logged(n) for n in range(first, min(first + BATCH, entries))])
    seconds = time.perf_counter() - started
    print(f"  stored {entries:,} entries in {seconds:.1f} s ({entries / seconds:,.0f}/s)")
    store.close()


def issue(url: DatabaseUrl, entries: int) -> None:
    """Runs in a process of its own: a restarted billing, its memory measured alone."""
    store = ServiceStore(url, "billing")
    command = m.IssueStatement.create(
        producer="crm", subject_id=AGREEMENT, data={"month": "2026-11"}
    )
    started = time.perf_counter()
    apply(store, [command])
    seconds = time.perf_counter() - started
    store.close()
    # Restarted again: a late entry for November walks past its issued ledger.
    store = ServiceStore(url, "billing")
    started = time.perf_counter()
    apply(store, [time_logged(entries)])
    late = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  after a restart: statement issued in {seconds:.2f} s")
    print(f"  after another restart: a late entry recorded in {late:.2f} s")
    print(f"  peak RSS of the restarted process {rss:.0f} MiB")
    store.close()


@contextmanager
def database(engine: str, folder: Path) -> Iterator[str | None]:
    if engine == "sqlite":
        yield f"sqlite:///{folder / 'billing.db'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(POSTGRES, autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError:
        yield None
        return
    try:
        yield f"{POSTGRES}?schema={schema}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--engine", nargs="*", default=["sqlite", "postgres"])
    parser.add_argument("--issue-only", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.issue_only:
        issue(DatabaseUrl.parse(args.issue_only, "billing"), args.entries)
        return
    for engine in args.engine:
        with tempfile.TemporaryDirectory() as folder, database(engine, Path(folder)) as url:
            print(f"{engine}:")
            if url is None:
                print("  no PostgreSQL: skipped")
                continue
            fill(DatabaseUrl.parse(url, "billing"), args.entries)
            restarted = [sys.executable, __file__, "--entries", str(args.entries)]
            subprocess.run([*restarted, "--issue-only", url], check=True)


if __name__ == "__main__":
    main()
