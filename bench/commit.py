"""What one batch's commit costs on PostgreSQL: a unit of work of `--events` new events
and a tracking position, saved by the service store's recorder, against the same
statements sent the library's way (psycopg's pipeline mode). CPU and wall ms a commit,
for each of `--repeat` runs of `--commits` commits.

    .venv/bin/python -m bench.commit [--events 6] [--commits 600] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from bench.batch_apply import store_for
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresProcessRecorder

from servicedesk_runtime.recorders import ColumnarPostgresProcessRecorder


class Thing(Aggregate):
    @event("Made")
    def __init__(self, n: int) -> None:
        self.n = n


def pipelined(recorder: ColumnarPostgresProcessRecorder) -> Callable[..., Any]:
    """The library's `insert_events` (pipeline mode) with this recorder's statements."""

    def insert_events(stored_events: Any, **kwargs: Any) -> Any:
        return PostgresProcessRecorder.insert_events(recorder, stored_events, **kwargs)

    return insert_events


def measure(label: str, events: int, commits: int, pipeline: bool) -> None:
    with store_for("commit") as (_, store):
        recorder = store.recorder
        assert isinstance(recorder, ColumnarPostgresProcessRecorder)
        if pipeline:
            recorder.insert_events = pipelined(recorder)  # type: ignore[method-assign]
        position = 0

        def commit() -> None:
            nonlocal position
            position += 1
            unit = store.unit_of_work()
            for n in range(events):
                unit.add(Thing(n))
            unit.commit(Tracking("inbound:0", position))

        for _ in range(50):  # warm: connections, prepared statements
            commit()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(commits):
            commit()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"{label:28} CPU {1000 * cpu / commits:6.3f} ms a commit   "
        f"wall {1000 * wall / commits:6.3f} ms a commit"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6)
    parser.add_argument("--commits", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.events} events and a tracking position a commit, PostgreSQL")
    for _ in range(args.repeat):
        measure("the store's recorder", args.events, args.commits, pipeline=False)
        measure("the library's pipeline mode", args.events, args.commits, pipeline=True)


if __name__ == "__main__":
    main()
