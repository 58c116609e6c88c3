"""Intake's start with many tickets behind it: N ticket references are issued through
intake's store (its reference sequence, in units of work of 2,000, not through Kafka),
then a freshly opened store (a restarted intake) does what intake does at start, loads
the sequence, and opens the first ticket through intake's real handler, after the
read-ahead the consumer does for every batch (which asks for the sequence's version).

Prints the seconds of each step per N, which should not grow with N. `--old-store`
writes the sequence as the code before snapshots did (no snapshot at all) and starts
twice: the first start after the upgrade pays for the whole history once, the second
should not.

    .venv/bin/python -m bench.reference_history [--tickets 10000 1000000]
        [--engine sqlite postgres] [--old-store]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench.billing_history import database

from servicedesk_contracts import messages as m
from servicedesk_intake.application import Intake
from servicedesk_intake.domain import ReferenceSequence
from servicedesk_intake.mail_desk import next_reference
from servicedesk_runtime.clock import ManualClock
from servicedesk_runtime.consumer import read_ahead
from servicedesk_runtime.database import DatabaseUrl
from servicedesk_runtime.snapshots import snapshot_if_behind
from servicedesk_runtime.store import ServiceStore, UnitOfWork

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
PER_UNIT_OF_WORK = 2000


def without_snapshots(uow: UnitOfWork) -> str:
    """How the code before snapshots issued a reference."""
    sequence = uow.get(ReferenceSequence.ID, ReferenceSequence) or ReferenceSequence()
    reference = sequence.next_reference()
    uow.add(sequence)
    return reference


def fill(url: DatabaseUrl, tickets: int, old_store: bool) -> None:
    issue = without_snapshots if old_store else next_reference
    store = ServiceStore(url, "intake")
    started = time.perf_counter()
    for first in range(0, tickets, PER_UNIT_OF_WORK):
        uow = store.unit_of_work()
        for _ in range(min(PER_UNIT_OF_WORK, tickets - first)):
            issue(uow)
        uow.commit()
    seconds = time.perf_counter() - started
    print(f"  issued {tickets:,} references in {seconds:.1f} s ({tickets / seconds:,.0f}/s)")
    store.close()


def submit() -> m.SubmitTicket:
    command: m.SubmitTicket = m.SubmitTicket.create(
        producer="bench",
        subject_id=uuid.uuid4(),
        occurred_at=NOW,
        data={
            "agreement_id": uuid.uuid4(),
            "reporter_email": "anna@acme.example",
            "reporter_name": "Anna",
            "organisation": "Acme",
            "channel": "email",
            "subject": "Scanner",
            "body": "offline",
            "category": "incident",
            "impact": "one user",
            "urgency": "low",
        },
    )
    return command


def start(url: DatabaseUrl, label: str) -> None:
    """A restarted intake: its start, a cold load of the sequence, its first ticket."""
    started = time.perf_counter()
    store = ServiceStore(url, "intake")
    opened = time.perf_counter()
    snapshot_if_behind(store, ReferenceSequence.ID, ReferenceSequence.SNAPSHOT_EVERY)
    caught_up = time.perf_counter()
    sequence: ReferenceSequence = store.repository.get(ReferenceSequence.ID)
    loaded = time.perf_counter()
    uow = store.unit_of_work()
    command = submit()
    handler = Intake(ManualClock(NOW)).handlers()["SubmitTicket"]
    read_ahead(uow, [(command, handler)])  # as the consumer does for every batch
    read = time.perf_counter()
    handler(command, uow)
    uow.commit()
    first = time.perf_counter()
    print(
        f"  {label}: store {opened - started:.3f} s, start step {caught_up - opened:.3f} s, "
        f"sequence loaded {loaded - caught_up:.3f} s (last SD-{sequence.last_number:06d}), "
        f"first ticket {first - loaded:.3f} s (its read-ahead {read - loaded:.4f} s)"
    )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, nargs="*", default=[10_000, 1_000_000])
    parser.add_argument("--engine", nargs="*", default=["sqlite", "postgres"])
    parser.add_argument("--old-store", action="store_true")
    args = parser.parse_args()
    for engine in args.engine:
        for tickets in args.tickets:
            with tempfile.TemporaryDirectory() as folder, database(engine, Path(folder)) as url:
                print(f"{engine}, {tickets:,} tickets:", flush=True)
                if url is None:
                    print("  no PostgreSQL: skipped")
                    continue
                database_url = DatabaseUrl.parse(url, "intake")
                fill(database_url, tickets, args.old_store)
                start(database_url, "first start")
                start(database_url, "next start")


if __name__ == "__main__":
    main()
