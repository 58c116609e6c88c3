"""Tracked consumption: apply Kafka messages exactly once in effect.

For every batch of one topic-partition the consumer decodes each message, skips one whose
`event_id` was applied before, calls the service's handler with a unit of work, and writes
all new events plus "consumed up to offset N" in one transaction. On start (and on every
partition assignment) it seeks to the positions recorded in its own database, never to
Kafka's committed offsets. Messages that cannot be accepted go to the dead-letter topic
before the batch is committed, so nothing is lost and the partition never blocks.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from eventsourcing.persistence import IntegrityError, OperationalError, Tracking

from servicedesk_contracts import InvalidMessage, Message, decode
from servicedesk_runtime.kafka import dead_letter
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.metrics import (
    CONSUMER_LAG,
    DUPLICATES_SKIPPED,
    MESSAGES_CONSUMED,
    PROCESSING_SECONDS,
)
from servicedesk_runtime.store import ServiceStore, UnitOfWork

log = get_logger(__name__)

Handler = Callable[[Message, UnitOfWork], None]
"""Applies one message. It must raise `Rejected` before changing anything."""

M = TypeVar("M", bound=Message)


def handles(kind: type[M], handle: Callable[[M, UnitOfWork], None]) -> tuple[str, Handler]:
    """Registers `handle` for messages of `kind`: `dict([handles(SubmitTicket, f), ...])`."""

    def handler(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, kind)
        handle(message, uow)

    return kind.TYPE, handler


INFRASTRUCTURE_ERRORS = (OperationalError, psycopg.OperationalError, sqlite3.OperationalError)


class Rejected(Exception):
    """A well-formed message the domain refuses (unknown ticket, impossible change...).
    `reason` is a short label from a closed set; `detail` says what is wrong."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class _Refusal:
    record: ConsumerRecord[bytes, bytes]
    reason: str
    detail: str


@dataclass
class _AppliedChunk:
    unit_of_work: UnitOfWork
    tracking: Tracking
    refusals: list[_Refusal] = field(default_factory=list)
    applied: int = 0


class _HandlerCrashed(Exception):
    def __init__(self, offset: int, error: Exception) -> None:
        super().__init__(f"offset {offset}: {error!r}")
        self.offset = offset
        self.error = error


class TrackedConsumer:
    def __init__(
        self,
        *,
        service: str,
        bootstrap: str,
        topics: Sequence[str],
        handlers: Mapping[str, Handler],
        store: ServiceStore,
        producer: AIOKafkaProducer,
        incarnation: str,
        session_timeout_ms: int = 6000,
        batch_max: int = 500,
        on_committed: Callable[[], None] = lambda: None,
    ) -> None:
        self.service = service
        self.topics = list(topics)
        self.handlers = dict(handlers)
        self.store = store
        self.producer = producer
        self.incarnation = incarnation
        self.on_committed = on_committed
        self.ready = False
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=service,
            client_id=f"{service}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(session_timeout_ms // 4, 100),
            max_poll_records=batch_max,
            # The broker holds a fetch until data or this wait: at aiokafka's default
            # (500 ms) every hop of a quiet pipeline adds up to half a second.
            fetch_max_wait_ms=50,
        )

    def tracking_name(self, tp: TopicPartition) -> str:
        return f"{self.incarnation}:{tp.topic}:{tp.partition}"

    async def run(self, stop: asyncio.Event) -> None:
        self._consumer.subscribe(self.topics, listener=_SeekToRecordedPositions(self))
        await self._consumer.start()
        try:
            while not stop.is_set():
                batch = await self._consumer.getmany(timeout_ms=200)
                self.ready = True
                for tp, records in batch.items():
                    await self._apply_with_retries(tp, records)
                await self._report_lag()
        finally:
            await self._consumer.stop()

    async def _apply_with_retries(
        self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]
    ) -> None:
        started = time.perf_counter()
        crashed: set[int] = set()
        attempt = 0
        while True:
            attempt += 1
            try:
                chunk = await asyncio.to_thread(self._apply, tp, records, crashed)
                for refusal in chunk.refusals:
                    await self._dead_letter(refusal)
                await asyncio.to_thread(chunk.unit_of_work.commit, chunk.tracking)
                break
            except _HandlerCrashed as crash:
                log.exception("handler_crashed", offset=crash.offset, error=repr(crash.error))
                crashed.add(crash.offset)
            except IntegrityError as error:
                # Another writer changed an aggregate we read (a timer, another replica):
                # apply the chunk again on fresh state.
                log.info("commit_conflict_retrying", attempt=attempt, error=str(error))
            except INFRASTRUCTURE_ERRORS as error:
                log.warning("store_unavailable_retrying", attempt=attempt, error=str(error))
                await asyncio.sleep(min(0.2 * attempt, 5))
        PROCESSING_SECONDS.labels(self.service).observe(time.perf_counter() - started)
        MESSAGES_CONSUMED.labels(self.service, tp.topic).inc(len(records))
        self.on_committed()

    def _apply(
        self,
        tp: TopicPartition,
        records: list[ConsumerRecord[bytes, bytes]],
        crashed: set[int],
    ) -> _AppliedChunk:
        """Runs in a worker thread: eventsourcing is synchronous."""
        chunk = _AppliedChunk(
            unit_of_work=self.store.unit_of_work(),
            tracking=Tracking(self.tracking_name(tp), records[-1].offset + 1),
        )
        for record in records:
            if record.offset in crashed:
                chunk.refusals.append(_Refusal(record, "handler_error", "handler raised"))
                continue
            refusal = self._apply_one(record, chunk.unit_of_work)
            if refusal is not None:
                chunk.refusals.append(refusal)
        return chunk

    def _apply_one(self, record: ConsumerRecord[bytes, bytes], uow: UnitOfWork) -> _Refusal | None:
        try:
            message = decode(record.value)
        except InvalidMessage as invalid:
            return _Refusal(record, invalid.reason, invalid.detail)
        handler = self.handlers.get(message.event_type)
        if handler is None:
            return None  # a type this service does not use: read past it
        if uow.already_applied(message.event_id):
            DUPLICATES_SKIPPED.labels(self.service, record.topic).inc()
            return None
        try:
            handler(message, uow)
        except Rejected as rejected:
            return _Refusal(record, rejected.reason, rejected.detail)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as error:
            raise _HandlerCrashed(record.offset, error) from error
        uow.mark_applied(message.event_id)
        return None

    async def _dead_letter(self, refusal: _Refusal) -> None:
        record = refusal.record
        await dead_letter(
            self.producer,
            service=self.service,
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            reason=refusal.reason,
            detail=refusal.detail,
        )

    def seek_to_recorded(self, assigned: set[TopicPartition]) -> None:
        for tp in assigned:
            position = self.store.position(self.tracking_name(tp)) or 0
            self._consumer.seek(tp, position)
            log.info("resuming", topic=tp.topic, partition=tp.partition, offset=position)

    async def _report_lag(self) -> None:
        lag_by_topic: dict[str, int] = {}
        for tp in self._consumer.assignment():
            end = self._consumer.highwater(tp)
            if end is None:
                continue
            position = await self._consumer.position(tp)
            lag_by_topic[tp.topic] = lag_by_topic.get(tp.topic, 0) + max(end - position, 0)
        for topic, lag in lag_by_topic.items():
            CONSUMER_LAG.labels(self.service, topic).set(lag)


class _SeekToRecordedPositions(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: TrackedConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._consumer.seek_to_recorded(assigned)
