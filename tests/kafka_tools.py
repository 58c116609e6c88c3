"""Reading and writing topics from tests, as another system would."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from servicedesk_runtime.ends import end_offsets


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]

    def json(self) -> dict[str, Any]:
        assert self.value is not None
        document: dict[str, Any] = json.loads(self.value)
        return document


def read_topic(bootstrap: str, topic: str) -> list[Record]:
    """Everything on `topic` now, from the beginning of every partition."""
    return asyncio.run(_read(bootstrap, topic))


async def _read(bootstrap: str, topic: str) -> list[Record]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        if not partitions:
            await consumer._client.force_metadata_update()
            ids = consumer.partitions_for_topic(topic) or set()
            partitions = [TopicPartition(topic, p) for p in sorted(ids)]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        # Not the broker's own report: Tansu's stops inside a partition's last batch.
        ends = await end_offsets(bootstrap, partitions)
        records: list[Record] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batch = await consumer.getmany(timeout_ms=500)
            for tp_records in batch.values():
                records += [Record(r.topic, r.key, r.value, dict(r.headers)) for r in tp_records]
        return records
    finally:
        await consumer.stop()


def events_of(bootstrap: str, topic: str, event_type: str) -> list[dict[str, Any]]:
    return [
        r.json()
        for r in read_topic(bootstrap, topic)
        if r.headers.get("event_type") == event_type.encode()
    ]


def publish_raw(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    """Publishes (key, value) pairs exactly as given."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for key, value in items:
                await producer.send_and_wait(topic, value=value, key=key)
        finally:
            await producer.stop()

    asyncio.run(send())
