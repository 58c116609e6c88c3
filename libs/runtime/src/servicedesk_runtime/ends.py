"""Where partitions end, on any Kafka-protocol broker, without trusting its report.

Kafka reports a partition's end (ListOffsets, a fetch's high-water mark) exactly. The
embedded Tansu broker reports the first offset of the partition's last record batch + 1
(FACTS.md: 100 records in one batch -> end 1), so "read up to the reported end" can stop
inside the last batch. The reported end is still a lower bound, and a fetch returns record
batches whole: a probe that starts at the reported end and reads one answer of the broker
learns the real end. On Kafka that answer is empty (or holds records newer than the call).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition


async def end_offsets(
    bootstrap: str, partitions: Sequence[TopicPartition], timeout: float = 30
) -> dict[TopicPartition, int]:
    """For each partition, an offset past every record it held when called (and no further
    than the records the probe saw). Raises TimeoutError when the broker does not answer."""
    probe = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await probe.start()
    try:
        probe.assign(list(partitions))
        ends: dict[TopicPartition, int] = dict(await probe.end_offsets(list(partitions)))
        for tp, reported in ends.items():
            probe.seek(tp, reported)
        await asyncio.wait_for(_read_one_answer_each(probe, ends), timeout)
        return ends
    finally:
        await probe.stop()


async def _read_one_answer_each(probe: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> None:
    """Moves each end past the records of the broker's first answer at the reported end."""
    pending = set(ends)
    while pending:
        got = await probe.getmany(*pending, timeout_ms=100)
        # aiokafka keeps an answer only if it is for the partition's current position (the
        # reported end until records are drained) and then sets the partition's poll
        # timestamp and buffers its records in one step: once the timestamp is there, one
        # draining call holds that answer's records, if it had any.
        answered = {tp for tp in pending if probe.last_poll_timestamp(tp) is not None}
        if answered - set(got):
            for tp, records in (await probe.getmany(*answered, timeout_ms=0)).items():
                got.setdefault(tp, []).extend(records)
        for tp, records in got.items():
            ends[tp] = max(ends[tp], records[-1].offset + 1)
        pending -= answered | set(got)


async def partitions_of(
    bootstrap: str, topics: Sequence[str], wait_seconds: float = 30
) -> list[TopicPartition]:
    """Every partition of `topics` (which must exist), in topic and partition order."""
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:  # stopped even when it could not start (no broker): no unclosed client left
        await probe.start()
        async with asyncio.timeout(wait_seconds):
            while True:
                known = await probe.topics()  # fresh metadata from the broker
                if set(topics) <= known:
                    break
                await asyncio.sleep(0.2)
        return [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(probe.partitions_for_topic(topic) or ())
        ]
    finally:
        await probe.stop()


@dataclass(frozen=True)
class StoredRecord:
    """A record as it is on the broker."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return None if value is None else value.decode("utf-8", "replace")


async def read_whole_topic(bootstrap: str, topic: str) -> list[StoredRecord]:
    """Everything on `topic` now (which must exist), from the start of every partition, in
    partition and offset order."""
    partitions = await partitions_of(bootstrap, [topic])
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        await consumer.start()
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await end_offsets(bootstrap, partitions)  # not the broker's own report
        records: list[StoredRecord] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batch = await consumer.getmany(timeout_ms=500)
            for tp_records in batch.values():
                records += [
                    StoredRecord(
                        r.topic, r.partition, r.offset, r.timestamp, r.key, r.value, dict(r.headers)
                    )
                    for r in tp_records
                ]
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()
