"""Drops the gateway's view and builds it again from the event topics, with a progress bar:

    python -m servicedesk_gateway.rebuild            # DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS

Stop every gateway replica first (they write the same tables). The rebuilt view records
the positions it read up to, under the broker's current incarnation, so a gateway started
afterwards goes on from there instead of reading the topics again.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from eventsourcing.persistence import Tracking

from servicedesk_contracts import InvalidMessage, Message, decode
from servicedesk_gateway.broker import FOLLOWED
from servicedesk_gateway.config import GatewaySettings
from servicedesk_gateway.view.store import GatewayView
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.ends import end_offsets, partitions_of
from servicedesk_runtime.kafka import broker_incarnation
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.progress import Progress
from servicedesk_runtime.settings import from_environment

log = get_logger(__name__)
BATCH = 2000
Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


@dataclass
class Rebuilt:
    events: int
    skipped: int
    seconds: float


async def rebuild(
    view: GatewayView, bootstrap: str, on_progress: Callable[[int, int], None] | None = None
) -> Rebuilt:
    """Empties `view` and applies every event on the followed topics up to their ends now.
    `on_progress(done, total)` is called as records are read."""
    started = time.perf_counter()
    incarnation = await broker_incarnation(bootstrap)
    partitions = await partitions_of(bootstrap, FOLLOWED)
    ends = await end_offsets(bootstrap, partitions)
    total = sum(ends.values())
    await asyncio.to_thread(view.drop)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    counts = _Counts()
    try:
        pending = {tp for tp, end in ends.items() if end > 0}
        consumer.assign(list(pending))
        for tp in pending:
            consumer.seek(tp, 0)
        next_offset = dict.fromkeys(pending, 0)
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=BATCH)
            for tp, fetched in batch.items():
                # Only what the partition held at the start, and never a record twice (a
                # broker may hand out a batch again, see FACTS.md on Tansu).
                records = [r for r in fetched if next_offset[tp] <= r.offset < ends[tp]]
                if records:
                    name = f"{incarnation}:{tp.topic}:{tp.partition}"
                    await _apply(view, records, Tracking(name, records[-1].offset + 1), counts)
                    next_offset[tp] = records[-1].offset + 1
                if next_offset[tp] >= ends[tp] or fetched[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
                if on_progress is not None:
                    on_progress(counts.read, total)
    finally:
        await consumer.stop()
    return Rebuilt(counts.applied, counts.skipped, time.perf_counter() - started)


@dataclass
class _Counts:
    read: int = 0
    applied: int = 0
    skipped: int = 0


async def _apply(
    view: GatewayView, records: list[Record], tracking: Tracking, counts: _Counts
) -> None:
    messages: list[Message] = []
    for record in records:
        try:
            messages.append(decode(record.value))
        except InvalidMessage:
            counts.skipped += 1  # the live consumer dead-lettered it: nothing to show
    counts.applied += await asyncio.to_thread(view.apply, *messages, tracking=tracking)
    counts.read += len(records)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    settings = from_environment(GatewaySettings, "gateway rebuild")
    database = Database(DatabaseUrl.parse(settings.database_url_for("gateway"), "gateway"))
    try:
        view = GatewayView(database)
        progress: Progress | None = None

        def show(done: int, total: int) -> None:
            nonlocal progress
            progress = progress or Progress(total)
            progress.show(done)

        result = asyncio.run(rebuild(view, settings.kafka_bootstrap_servers, show))
        if progress is not None:
            progress.show(progress.total, final=True)
        print(
            f"view rebuilt: {result.events:,} events applied, {result.skipped:,} unreadable "
            f"skipped, in {result.seconds:.1f} s ({result.events / max(result.seconds, 1e-9):,.0f}"
            " events/s)"
        )
    finally:
        database.close()


if __name__ == "__main__":
    main()
