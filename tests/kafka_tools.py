"""Reading and writing topics from tests, as another system would."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from servicedesk_runtime.ends import read_whole_topic


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
    try:
        stored = await read_whole_topic(bootstrap, topic)
    except TimeoutError:  # the topic does not exist (yet)
        return []
    return [Record(r.topic, r.key, r.value, r.headers) for r in stored]


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
