"""Idle benchmark: CPU the whole stack burns when nothing happens.

Starts the Tansu broker and all six services (PostgreSQL when reachable, else SQLite),
waits until they are ready and settled, then measures for `--seconds` the CPU used by each
service, the broker and PostgreSQL's backends, as a share of one core.

    .venv/bin/python -m bench.idle [--seconds 30] [--only sqlite|postgres]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from bench.pipeline import POSTGRES, cpu_of, drop_schemas, postgres_processes

from servicedesk_runtime.tansu import EmbeddedBroker, free_port
from servicedesk_stack.stack import SERVICES, Stack, StackConfig


def measure(label: str, database_url: str, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as folder, EmbeddedBroker() as broker:
        config = StackConfig(
            bootstrap=broker.bootstrap,
            data_dir=Path(folder),
            database_url=database_url,
            schema_prefix=f"idle{uuid.uuid4().hex[:6]}_",
            gateway_port=free_port(),
            smtp_port=free_port(),
        )
        stack = Stack(config)
        stack.start()
        try:
            stack.wait_ready()
            time.sleep(10)  # start-up work (joins, first refreshes) is not idling
            processes = {s: p.pid for s, p in stack.processes.items()}
            processes["broker"] = broker.pid
            database = postgres_processes() if database_url else {}
            watched = {**processes, **database}
            before = cpu_of(watched)
            time.sleep(seconds)
            after = cpu_of(watched)
        finally:
            stack.stop()
            if database_url:
                drop_schemas(database_url, config.schema_prefix, SERVICES)
    share = {name: 100 * (after[name] - before[name]) / seconds for name in watched}
    postgres = sum(v for k, v in share.items() if k.startswith("postgres:"))
    parts = [f"{name} {share[name]:.2f}" for name in processes]
    if database_url:
        parts.append(f"postgres {postgres:.2f}")
    total = sum(share.values())
    print(f"{label:9} idle CPU, % of one core over {seconds:.0f} s: total {total:.2f}")
    print(f"{'':9} " + ", ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    if args.only != "postgres":
        measure("sqlite", "", args.seconds)
    if args.only != "sqlite":
        try:
            psycopg.connect(POSTGRES, connect_timeout=3).close()
        except psycopg.OperationalError as error:
            print(f"postgres  skipped: {error}")
            return
        measure("postgres", POSTGRES, args.seconds)


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    main()
