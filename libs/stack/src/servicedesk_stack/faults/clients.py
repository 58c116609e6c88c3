"""The fault suite's Kafka client side: reading a topic whole, publishing through a broker
that restarts, a port that stays free for the broker's restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from servicedesk_runtime.tansu import free_port


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]

    def event_type(self) -> str:
        return self.headers.get("event_type", b"").decode(errors="replace")

    def json(self) -> dict[str, Any]:
        assert self.value is not None
        document: dict[str, Any] = json.loads(self.value)
        return document


def read_topic(bootstrap: str, topic: str, quiet_seconds: float = 2.0) -> list[Record]:
    """Everything on `topic`, read from the beginning until nothing more arrives for
    `quiet_seconds`. Tansu's end offsets are wrong after a multi-record batch (FACTS.md),
    so what was read is counted, never compared with a high-water mark."""
    return asyncio.run(_read_topic(bootstrap, topic, quiet_seconds))


async def _read_topic(bootstrap: str, topic: str, quiet_seconds: float) -> list[Record]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        ids = consumer.partitions_for_topic(topic) or set()
        partitions = [TopicPartition(topic, p) for p in sorted(ids)]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen: dict[tuple[int, int], Record] = {}
        last_data = time.monotonic()
        while time.monotonic() - last_data < quiet_seconds:
            batch = await consumer.getmany(timeout_ms=300, max_records=10_000)
            for tp, records in batch.items():
                for r in records:
                    seen[(tp.partition, r.offset)] = Record(
                        tp.partition, r.offset, r.key, r.value, dict(r.headers)
                    )
                last_data = time.monotonic()
        return sorted(seen.values(), key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


class Publisher:
    """Sends to one topic from its own thread, retrying each message until the broker
    takes it (a broker restarting refuses or drops connections for a while)."""

    def __init__(self, bootstrap: str, max_request_size: int = 1024 * 1024) -> None:
        self.bootstrap = bootstrap
        self.max_request_size = max_request_size

    async def _producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=False,
            request_timeout_ms=5000,
            max_request_size=self.max_request_size,
        )
        await producer.start()
        return producer

    async def send_all(
        self,
        topic: str,
        messages: Iterator[tuple[bytes | None, bytes]],
        rate: float = 0.0,
        before_send: Callable[[int], None] = lambda _: None,
        deadline_seconds: float = 300,
    ) -> int:
        """Sends `messages` in order, `rate` a second (0: at once); `before_send(i)` is
        called as message i is handed over. Returns how many were sent."""
        producer = await self._producer()
        started = time.monotonic()
        sent = 0
        try:
            for i, (key, value) in enumerate(messages):
                if rate > 0:
                    # Pacing the stream, not waiting for a condition.
                    await asyncio.sleep(max(started + i / rate - time.monotonic(), 0))
                before_send(i)
                producer = await self._send(producer, topic, key, value, deadline_seconds)
                sent += 1
        finally:
            await producer.stop()
        return sent

    async def _send(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        key: bytes | None,
        value: bytes,
        deadline_seconds: float,
    ) -> AIOKafkaProducer:
        deadline = time.monotonic() + deadline_seconds
        pause = 0.2
        while True:
            try:
                await producer.send_and_wait(topic, value=value, key=key)
                return producer
            except Exception:
                if time.monotonic() > deadline:
                    raise
                with contextlib.suppress(Exception):
                    await producer.stop()
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)
                with contextlib.suppress(Exception):
                    producer = await self._producer()

    def send(self, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
        asyncio.run(self.send_all(topic, iter(items)))


def free_low_port() -> int:
    """A free port below the kernel's range for outgoing connections (32768-60999 here),
    so that no client socket takes it while the broker is down for a restart."""
    for _ in range(200):
        port = random.randint(20_000, 32_000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()
