"""Kafka plumbing: topics, the broker's incarnation, producers, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from servicedesk_contracts import topics
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.metrics import DEAD_LETTERED

log = get_logger(__name__)


async def connect_admin(bootstrap: str, wait_seconds: float = 60) -> AIOKafkaAdminClient:
    """An admin client, retrying while the broker is still starting."""
    deadline = time.monotonic() + wait_seconds
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            return admin
        except KafkaConnectionError:
            await admin.close()
            if time.monotonic() > deadline:
                raise
            log.info("waiting_for_broker", bootstrap=bootstrap)
            await asyncio.sleep(0.5)


async def ensure_topics(bootstrap: str, names: Iterable[str] = topics.ALL) -> None:
    """Creates the topics with their partitions; existing ones are left as they are.
    (A client that auto-creates a topic would give it the broker's default partitions.)"""
    admin = await connect_admin(bootstrap)
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            # Another service may create them first.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(n, num_partitions=topics.PARTITIONS, replication_factor=1)
                        for n in missing
                    ]
                )
    finally:
        await admin.close()


async def broker_incarnation(bootstrap: str) -> str:
    """Identifies the broker's data: its cluster id. A new embedded broker (memory storage)
    gets a new cluster id at every start, so positions recorded against the old one are
    not applied to the new one; a real Kafka cluster keeps its id and its data."""
    admin = await connect_admin(bootstrap)
    try:
        cluster = await admin.describe_cluster()
        return str(cluster["cluster_id"])
    finally:
        await admin.close()


def new_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        linger_ms=5,
        # Tansu rejects idempotent producers (FACTS.md); duplicates are handled by event_id.
        enable_idempotence=False,
    )


async def dead_letter(
    producer: AIOKafkaProducer,
    *,
    service: str,
    source_topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    detail: str,
) -> None:
    """Sends a message that cannot be accepted to the dead-letter topic, unchanged, with
    why and where from in its headers, and counts it."""
    headers = [
        ("error_reason", reason.encode()),
        ("error_detail", detail[:4000].encode()),
        ("source_service", service.encode()),
        ("source_topic", source_topic.encode()),
        ("source_partition", str(partition).encode()),
        ("source_offset", str(offset).encode()),
    ]
    await producer.send_and_wait(topics.DEAD_LETTER, value=value, key=key, headers=headers)
    DEAD_LETTERED.labels(service, source_topic, reason).inc()
    log.warning(
        "dead_lettered",
        topic=source_topic,
        partition=partition,
        offset=offset,
        reason=reason,
        detail=detail[:500],
    )
