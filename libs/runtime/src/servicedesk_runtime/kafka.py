"""Kafka plumbing: topics, the broker's incarnation, producers, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from servicedesk_contracts import InvalidMessage, topics
from servicedesk_contracts.codec import parse_json
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.metrics import DEAD_LETTERED, MESSAGES_SKIPPED
from servicedesk_runtime.retry import Backoff, Stopped, retry

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


async def until_replaced(
    bootstrap: str, incarnation: str, stop: asyncio.Event, every: float = 10
) -> str | None:
    """Returns the broker's new incarnation once it is no longer `incarnation` (an embedded
    broker restarted under us), or None when `stop` is set first. An unreachable broker is
    not a new one: the clients retry meanwhile, and so does this watch."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
        if stop.is_set():
            return None
        try:
            current = await asyncio.wait_for(broker_incarnation(bootstrap), timeout=every * 5)
        except (KafkaError, OSError, TimeoutError) as error:
            log.info("broker_unreachable", error=repr(error))
            continue
        if current != incarnation:
            log.warning("broker_replaced", old=incarnation, new=current)
            return current
    return None


def new_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        # No lingering: a relay hands its whole round to the producer at once, so records
        # are batched anyway, and each hop would otherwise wait 5 ms for nothing.
        linger_ms=0,
        # Tansu rejects idempotent producers (FACTS.md); duplicates are handled by event_id.
        enable_idempotence=False,
    )


DEAD_LETTER_VALUE_LIMIT = 256 * 1024
"""A dead-lettered value is kept whole up to this size. Larger ones (a 100 MB body) could
never be produced (the producer's request limit is 1 MB): their head is kept and the
headers say so, so the record of what arrived is never what makes the consumer stall."""


def _event_id_of(value: bytes | None) -> str | None:
    """The event_id a refused message carries, if it is readable at all."""
    try:
        found = parse_json(value).get("event_id")
    except InvalidMessage:
        return None
    return str(found)[:100] if found is not None else None


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
    stop: asyncio.Event | None = None,
    causation_id: str | None = None,
) -> bool:
    """Sends a message that cannot be accepted to the dead-letter topic, with why and where
    from in its headers, and counts it. While the broker refuses, retries with backoff for
    about a minute; then (or at once for a record the broker can never take) the message is
    skipped with an error log and a metric. Returns whether it was dead-lettered."""
    headers = [
        ("error_reason", reason.encode()),
        ("error_detail", detail[:4000].encode("utf-8", "backslashreplace")),
        ("source_service", service.encode()),
        ("source_topic", source_topic.encode()),
        ("source_partition", str(partition).encode()),
        ("source_offset", str(offset).encode()),
    ]
    if causation_id is not None:  # the refused command: GET /commands/{id} finds it
        headers.append(("causation_id", causation_id.encode()))
    if value is not None and len(value) > DEAD_LETTER_VALUE_LIMIT:
        headers.append(("value_truncated_from_bytes", str(len(value)).encode()))
        value = value[:DEAD_LETTER_VALUE_LIMIT]
    if key is not None and len(key) > DEAD_LETTER_VALUE_LIMIT:
        key = key[:DEAD_LETTER_VALUE_LIMIT]

    async def send() -> None:
        await producer.send_and_wait(topics.DEAD_LETTER, value=value, key=key, headers=headers)

    where = {
        "topic": source_topic,
        "partition": partition,
        "offset": offset,
        "reason": reason,
        "key": None if key is None else key[:200].decode("utf-8", "backslashreplace"),
        "event_id": _event_id_of(value),
    }
    try:
        await retry(
            send,
            retry_on=(KafkaError, OSError),
            stop=stop or asyncio.Event(),
            what="dead letter",
            backoff=Backoff(first=0.2, longest=5.0, attempts=15),
        )
    except Stopped:
        raise
    except (KafkaError, OSError) as error:
        MESSAGES_SKIPPED.labels(source_topic).inc()
        log.error("dead_letter_failed_message_skipped", error=repr(error), **where)
        return False
    DEAD_LETTERED.labels(source_topic, reason).inc()
    log.warning("dead_lettered", detail=detail[:500], **where)
    return True
