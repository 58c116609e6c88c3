"""The fault suite, long version (issue 8): tickets on PostgreSQL while services are killed,
the stores' connections terminated and the embedded broker restarted, then hostile input.
Prints the counts from the stores, topics and mailbox, the invariants and one summary line.

    .venv/bin/python -u bench/fault_suite.py --tickets 10000 --kills 12

The driver is `servicedesk_stack.faults`; `tests/test_fault_suite.py` runs a short version
and asserts the same invariants.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from servicedesk_stack.faults import SuiteConfig, run

POSTGRES = os.environ.get(
    "SERVICEDESK_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=40.0, help="tickets published a second")
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--hostile", type=int, default=10_000)
    parser.add_argument("--hostile-valid", type=int, default=500)
    parser.add_argument("--big-bodies", type=int, default=5)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--database-url", default=POSTGRES)
    parser.add_argument("--keep", action="store_true", help="keep the logs even on success")
    args = parser.parse_args()
    # A terminated run still stops its services and broker and drops its schemas.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    folder = tempfile.mkdtemp(prefix="fault-suite-")
    config = SuiteConfig(
        database_url=args.database_url,
        data_dir=Path(folder),
        tickets=args.tickets,
        rate=args.rate,
        kills=args.kills,
        hostile=args.hostile,
        hostile_valid=args.hostile_valid,
        big_bodies=args.big_bodies,
        drain_timeout=max(600, args.tickets / 10),
        seed=args.seed,
    )
    started = time.monotonic()
    results = run(config, say=lambda line: print(line, flush=True))
    print(results.summary())
    print(f"fault-suite: whole run {time.monotonic() - started:.0f}s; logs in {folder}")
    if args.keep or results.tally.failures:
        return 1 if results.tally.failures else 0
    shutil.rmtree(folder)  # kept when something failed: the services' logs tell why
    return 0


if __name__ == "__main__":
    sys.exit(main())
