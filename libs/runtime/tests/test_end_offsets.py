"""End offsets a reader can trust, on the real embedded broker (whose own report is the
first offset of a partition's last batch + 1)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from servicedesk_runtime.ends import end_offsets
from servicedesk_runtime.kafka import ensure_topics
from servicedesk_runtime.tansu import EmbeddedBroker

pytestmark = pytest.mark.integration
TOPIC = "probe.test"


async def produce_batch(bootstrap: str, partition: int, count: int) -> None:
    """`count` records in one record batch (one linger window, one large batch)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=500, max_batch_size=1 << 20)
    await producer.start()
    try:
        sent = [await producer.send(TOPIC, b"r" * 50, partition=partition) for _ in range(count)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def reported_ends(
    bootstrap: str, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def test_end_offsets_lie_after_every_record_even_when_the_broker_reports_less() -> None:
    with EmbeddedBroker() as broker:
        await ensure_topics(broker.bootstrap, [TOPIC])
        partitions = [TopicPartition(TOPIC, p) for p in range(4)]
        await produce_batch(broker.bootstrap, 0, 100)
        await produce_batch(broker.bootstrap, 0, 100)
        await produce_batch(broker.bootstrap, 1, 1)
        reported = await reported_ends(broker.bootstrap, partitions)
        ends = await end_offsets(broker.bootstrap, partitions)
        print(f"reported by the broker {list(reported.values())}, read {list(ends.values())}")
        assert [ends[tp] for tp in partitions] == [200, 1, 0, 0]


async def test_end_offsets_of_no_partitions_is_empty() -> None:
    with EmbeddedBroker() as broker:
        assert await end_offsets(broker.bootstrap, []) == {}
