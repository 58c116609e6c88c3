"""Tracked consumption: apply Kafka messages exactly once in effect, and never get stuck.

For every batch of one topic-partition the consumer decodes each message, skips one whose
`event_id` was applied before, calls the service's handler with a unit of work, and writes
all new events plus "consumed up to offset N" in one transaction. On start (and on every
partition assignment) it seeks to the positions recorded in its own database, never to
Kafka's committed offsets.

Every message ends in exactly one of these ways, so a partition never blocks:
- applied (its events and the position committed together);
- read past: a type this service does not use on an event topic (found from the
  `event_type` header without parsing, or from the envelope), or a duplicate `event_id`;
- dead-lettered with a reason: not a message at all, refused by the contract or by the
  domain (`Rejected`), a handler that raised, a message the store cannot hold;
- skipped with an error log and a metric, when even the dead-letter topic refuses it.

Failures are told apart, because each needs another answer:
- the database is unreachable: wait with capped backoff until it is back (or shutdown);
- a *tracking* conflict (another member, or this process before a crash, already recorded
  a position past this batch): the batch is done, seek on, never retry it;
- an *aggregate* conflict (another writer changed an aggregate this batch read: a timer, a
  replica): apply again on fresh state, a bounded number of times, then one message at a
  time;
- anything else from the store: some message in the batch cannot be stored; apply the
  messages one by one and dead-letter the one that fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeAlias, TypeVar

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    Tracking,
)

from servicedesk_contracts import InvalidMessage, Message, decode
from servicedesk_contracts import topics as topic_names
from servicedesk_contracts.codec import MAX_MESSAGE_BYTES, load_json
from servicedesk_contracts.envelope import EVENT_TYPE_HEADER
from servicedesk_runtime.kafka import dead_letter
from servicedesk_runtime.logs import get_logger, message_fields
from servicedesk_runtime.metrics import (
    CONSUMER_LAG,
    DUPLICATES_SKIPPED,
    MESSAGES_CONSUMED,
    PROCESSING_SECONDS,
    STORE_RETRIES,
    start_service_series,
)
from servicedesk_runtime.recorders import positions
from servicedesk_runtime.retry import Backoff, Stopped, retry

log = get_logger(__name__)


class ReadsAhead(Protocol):
    """A unit of work that can read ahead what a batch will ask (see `read_ahead`)."""

    def prefetch(
        self, message_ids: Iterable[uuid.UUID], aggregate_ids: Iterable[uuid.UUID]
    ) -> None: ...


class TrackedUnitOfWork(ReadsAhead, Protocol):
    """What a batch is applied through: a service's `store.UnitOfWork` (events) or a
    projection's `projection.ProjectionUnitOfWork` (read-model tables)."""

    def already_applied(self, event_id: uuid.UUID) -> bool: ...
    def mark_applied(self, event_id: uuid.UUID) -> None: ...
    def events_mark(self) -> dict[uuid.UUID, int]: ...
    def produced_since(self, mark: dict[uuid.UUID, int]) -> list[Any]: ...
    def record_outcome(self, command: Any, outcome: str, **details: Any) -> None: ...
    def after_commit(self, effect: Callable[[], None]) -> None: ...
    def is_empty(self) -> bool: ...
    def commit(self, tracking: Tracking | None = None) -> None: ...
    def discard(self) -> None: ...


class TrackedStore(Protocol):
    def position(self, tracking_name: str) -> int | None: ...
    def unit_of_work(self) -> Any: ...  # a TrackedUnitOfWork (Protocols are invariant)


Handler = Callable[[Message, Any], None]
"""Applies one message through the store's unit of work. It must raise `Rejected` before
changing anything."""

M = TypeVar("M", bound=Message)
U = TypeVar("U")
T = TypeVar("T")
Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


class _Registered:
    """A handler for one message type, and the aggregates it will read (see `handles`)."""

    def __init__(
        self,
        kind: type[Message],
        handle: Callable[[Any, Any], None],
        reads: Callable[[Any], Iterable[uuid.UUID]] | None,
    ) -> None:
        self.kind = kind
        self.handle = handle
        self._reads = reads

    def __call__(self, message: Message, uow: Any) -> None:
        assert isinstance(message, self.kind)
        self.handle(message, uow)

    def reads(self, message: Message) -> Iterable[uuid.UUID]:
        return () if self._reads is None else self._reads(message)


def handles(
    kind: type[M],
    handle: Callable[[M, U], None],
    reads: Callable[[M], Iterable[uuid.UUID]] | None = None,
) -> tuple[str, Handler]:
    """Registers `handle` for messages of `kind`: `dict([handles(SubmitTicket, f), ...])`.
    `reads` names the aggregates `handle` will ask for (existing or not), so a batch reads
    them all ahead in one query instead of one round trip each; a name left out is still
    read when asked, only slower."""
    return kind.TYPE, _Registered(kind, handle, reads)


def handles_any(
    handle: Callable[[Message, U], None], reads: Callable[[Message], Iterable[uuid.UUID]]
) -> Handler:
    """A handler registered under several message types (`dict.fromkeys(names, ...)`)
    that names what it reads, as `handles` does for one type."""
    return _Registered(Message, handle, reads)


INFRASTRUCTURE_ERRORS = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,
)
"""The database is away (a dropped connection, a restart, a locked file): wait for it."""

AGGREGATE_CONFLICT_ATTEMPTS = 8

RECORD_IDLE_POSITION_EVERY = 1.0
"""Seconds between two positions recorded for batches that changed nothing."""

IDLE_AFTER_SECONDS = 10.0
"""Without a message for this long, a consumer fetches at its idle pace."""


@dataclass(frozen=True)
class FetchPacing:
    """How long a consumer's fetch may wait at the broker for messages (Kafka's
    `fetch.max.wait.ms`), while messages flow and once it has read none for a while.

    Tansu holds a fetch for much of its wait even when data arrives meanwhile (FACTS.md;
    `bench/broker_fetch_wait.py`: p50 13 ms at 50 ms, 8 ms at 20, 3 ms at 10), so on Tansu the busy
    wait is latency at each hop, and a shorter one costs CPU in every consumer and in the
    broker. A consumer that has read nothing for a while asks less often, which is most of
    an idle stack's CPU; the first message after a quiet spell then waits up to the idle
    wait per hop, which moves no deadline (clocks run from when a ticket was received). A
    Kafka broker answers a waiting fetch as soon as data arrives: there both can be long."""

    busy_ms: int = 25
    """Measured at 20 tickets/s on PostgreSQL (`bench/pipeline.py --fetch-wait-ms`): 50 ms
    gave p50/p95 50/67 ms from submit to running clock, 25 ms 42/51 ms at 8 % more CPU per
    ticket, 10 ms 38/50 ms at 25 % more."""
    idle_ms: int = 1000


DEFAULT_PACING = FetchPacing()


class Rejected(Exception):
    """A well-formed message the domain refuses (unknown ticket, impossible change...).
    `reason` is a short label from a closed set; `detail` says what is wrong."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class _Refusal:
    record: Record
    reason: str
    detail: str


@dataclass
class _AppliedChunk:
    unit_of_work: TrackedUnitOfWork
    tracking: Tracking
    refusals: list[_Refusal] = field(default_factory=list)


_Route: TypeAlias = "tuple[Message, Handler] | _Refusal | None"
"""A message and its handler; None to read past it; or why it is refused."""


class _HandlerCrashed(Exception):
    def __init__(self, offset: int, error: Exception) -> None:
        super().__init__(f"offset {offset}: {error!r}")
        self.offset = offset
        self.detail = f"{type(error).__name__}: {error}"[:2000]


class _AggregateConflict(Exception):
    pass


class _Separately(Exception):
    """A message of a fetch applied together needs its partition's batch alone."""


class _BatchDone(Exception):
    """Another consumer recorded a position past this batch: nothing left to do."""


class TrackedConsumer:
    def __init__(
        self,
        *,
        service: str,
        bootstrap: str,
        topics: Sequence[str],
        handlers: Mapping[str, Handler],
        store: TrackedStore,
        producer: AIOKafkaProducer,
        incarnation: str,
        session_timeout_ms: int = 6000,
        batch_max: int = 500,
        on_committed: Callable[[], None] = lambda: None,
        command_topics: Sequence[str] = topic_names.COMMANDS,
        pacing: FetchPacing = DEFAULT_PACING,
    ) -> None:
        self.service = service
        self.pacing = pacing
        self.topics = list(topics)
        start_service_series(service, self.topics)  # see metrics: a born series is unseen
        self.handlers = dict(handlers)
        self.store = store
        self.producer = producer
        self.incarnation = incarnation
        self.on_committed = on_committed
        self.command_topics = frozenset(command_topics)
        self.ready = False
        self._stop = asyncio.Event()
        self._next_offset: dict[TopicPartition, int] = {}
        self._new_client = partial(
            AIOKafkaConsumer,
            bootstrap_servers=bootstrap,
            group_id=service,
            client_id=f"{service}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(session_timeout_ms // 4, 100),
            max_poll_records=batch_max,
            fetch_max_wait_ms=pacing.busy_ms,
            # aiokafka's fetch routine also wakes this often when nothing happens (its
            # default, 200 ms, was a third of an idle consumer's wake-ups); a fetch that
            # returns or a batch consumed wakes it at once. Only a new assignment after a
            # rebalance may be fetched up to this much later.
            consumer_timeout_ms=1000,
        )
        self._client: AIOKafkaConsumer | None = None
        """Made by `run`: a consumer handed fetches directly (a rebuild, a test) opens none,
        and leaves no unclosed client behind."""
        self._last_read = time.monotonic()
        self._lag_reported = 0.0
        self._recorded_at: dict[TopicPartition, float] = {}
        self._unrecorded: dict[TopicPartition, int] = {}
        """Positions read past but not recorded yet (see `_attempt`)."""

    def assigned(self) -> set[TopicPartition]:
        """The partitions this member of the group consumes now."""
        return set(self._client.assignment()) if self._client is not None else set()

    @property
    def _consumer(self) -> AIOKafkaConsumer:
        if self._client is None:
            raise RuntimeError(f"{self.service}: the consumer is not running")
        return self._client

    def tracking_name(self, tp: TopicPartition) -> str:
        return f"{self.incarnation}:{tp.topic}:{tp.partition}"

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        self._client = self._new_client()
        self._consumer.subscribe(self.topics, listener=_SeekToRecordedPositions(self))
        await self._consumer.start()
        try:
            while not stop.is_set():
                batch = await self._consumer.getmany(timeout_ms=1000)
                self.ready = True
                self._pace(busy=bool(batch))
                try:
                    await self.process_fetch(batch)
                    await self._record_unrecorded_positions()
                except Stopped:
                    break  # uncommitted: read again from the recorded position next time
                if batch or time.monotonic() - self._lag_reported > 5:
                    await self._report_lag()
        finally:
            await self._consumer.stop()

    def _pace(self, busy: bool) -> None:
        """Fetches often while messages flow, rarely when there have been none for a while
        (see `FetchPacing`). aiokafka reads the wait anew for every fetch."""
        now = time.monotonic()
        if busy:
            self._last_read = now
        idle = now - self._last_read > IDLE_AFTER_SECONDS
        self.fetch_wait_ms = self.pacing.idle_ms if idle else self.pacing.busy_ms

    @property
    def fetch_wait_ms(self) -> int:
        return int(self._consumer._fetcher._fetch_max_wait_ms)

    @fetch_wait_ms.setter
    def fetch_wait_ms(self, wait: int) -> None:
        # aiokafka has no public setter; the test of this pace fails if this one moves.
        self._consumer._fetcher._fetch_max_wait_ms = wait

    # --- one batch -----------------------------------------------------------------------

    async def process_fetch(self, fetched: Mapping[TopicPartition, list[Record]]) -> None:
        """Applies what one fetch returned: the batches of all its partitions together, in
        one transaction that records each partition's position, else partition by
        partition. A fetch at a light load spans three or four partitions of a few
        messages each, and every transaction costs a worker thread, a read-ahead query, a
        commit and a relay round: together they cost one."""
        pending: dict[TopicPartition, list[Record]] = {}
        for tp, records in fetched.items():
            unseen = self._unseen(tp, records)
            if unseen and self._read_past_whole(tp, unseen):
                self._finished({tp: unseen}, time.perf_counter(), stored=False)
            elif unseen:
                pending[tp] = unseen
        if len(pending) > 1 and await self._apply_together(pending):
            return
        for tp, records in pending.items():
            await self.process(tp, records)

    def _unseen(self, tp: TopicPartition, records: list[Record]) -> list[Record]:
        # A broker may hand out records again that this consumer has committed (Tansu
        # answers a fetch with the whole stored batch around the asked offset).
        return [r for r in records if r.offset >= self._next_offset.get(tp, 0)]

    def _finished(
        self, batches: Mapping[TopicPartition, list[Record]], started: float, stored: bool
    ) -> None:
        """After a batch (of one partition or several) is done with."""
        for tp, records in batches.items():
            self._next_offset[tp] = max(self._next_offset.get(tp, 0), records[-1].offset + 1)
            MESSAGES_CONSUMED.labels(tp.topic).inc(len(records))
        PROCESSING_SECONDS.observe(time.perf_counter() - started)
        if stored:
            self.on_committed()

    async def _apply_together(self, batches: dict[TopicPartition, list[Record]]) -> bool:
        """Applies the batches of several partitions in one transaction, if nothing in
        them needs the care of one partition alone; says whether it did. Anything else (a
        refused or crashing message, a conflict, a position recorded elsewhere) rolls the
        whole back and leaves it to `process`, partition by partition: nothing of it was
        committed, and no dead letter was sent."""
        started = time.perf_counter()
        try:
            stored = await self._with_store(lambda: self._attempt_together(batches))
        except Stopped:
            raise
        except Exception as error:
            why = f"{type(error).__name__}: {error}"[:300]
            log.info("fetch_applied_partition_by_partition", why=why)
            return False
        self._finished(batches, started, stored)
        return True

    async def _attempt_together(self, batches: dict[TopicPartition, list[Record]]) -> bool:
        """`_attempt` for several partitions at once; returns whether anything was stored.
        Raises `_Separately` when a message is refused: that needs its partition alone."""
        chunk = await asyncio.to_thread(self._apply, batches, {})
        if chunk.refusals:
            await asyncio.to_thread(chunk.unit_of_work.discard)
            refused = chunk.refusals[0].record
            raise _Separately(f"{refused.topic}[{refused.partition}]@{refused.offset}")
        return await self._commit_or_defer(chunk, batches)

    async def _commit_or_defer(
        self, chunk: _AppliedChunk, batches: Mapping[TopicPartition, list[Record]]
    ) -> bool:
        """Commits an applied chunk with its positions; returns whether anything was
        stored. A chunk that changed nothing, of partitions whose positions were recorded
        within the second, is thrown away instead and its positions wait (see
        `_record_unrecorded_positions`): reading those messages again after a restart
        changes nothing either."""
        unit_of_work = chunk.unit_of_work
        changed_nothing = not chunk.refusals and unit_of_work.is_empty()
        if changed_nothing and all(self._recorded_lately(tp) for tp in batches):
            await asyncio.to_thread(unit_of_work.discard)
            for tp, records in batches.items():
                self._unrecorded[tp] = records[-1].offset + 1
            return False
        stored = not unit_of_work.is_empty()
        await asyncio.to_thread(unit_of_work.commit, chunk.tracking)
        for tp in batches:
            self._recorded(tp)
        return stored

    async def process(self, tp: TopicPartition, records: list[Record]) -> None:
        """Applies one fetched batch of a topic-partition; returns when every message of it
        is applied, read past, dead-lettered or skipped (or the service stops)."""
        started = time.perf_counter()
        records = self._unseen(tp, records)
        if not records:
            return
        dead_lettered: set[int] = set()  # offsets sent to the dead-letter topic already
        stored = True
        try:
            if self._read_past_whole(tp, records):
                stored = False
            else:
                stored = await self._apply_batch(tp, records, dead_lettered)
        except _BatchDone:
            pass
        except _AggregateConflict:
            log.warning("conflicts_persist_applying_one_by_one", topic=tp.topic, n=len(records))
            await self._apply_one_by_one(tp, records, dead_lettered)
        except _StoreRefused as refused:
            if len(records) == 1:
                await self._refuse_alone(tp, records[0], refused, dead_lettered)
            else:
                log.warning("store_refused_batch_applying_one_by_one", error=str(refused))
                await self._apply_one_by_one(tp, records, dead_lettered)
        self._finished({tp: records}, started, stored)

    async def _apply_one_by_one(
        self, tp: TopicPartition, records: list[Record], dead_lettered: set[int]
    ) -> None:
        for record in records:
            try:
                await self._apply_batch(tp, [record], dead_lettered)
            except _BatchDone:
                continue
            except (_AggregateConflict, _StoreRefused) as error:
                await self._refuse_alone(tp, record, error, dead_lettered)

    async def _refuse_alone(
        self, tp: TopicPartition, record: Record, error: Exception, dead_lettered: set[int]
    ) -> None:
        """Dead-letters one message the store would not take, and records its position."""
        reason = "conflict" if isinstance(error, _AggregateConflict) else "store_refused"
        await self._send_dead_letters([_Refusal(record, reason, str(error))], dead_lettered)
        tracking = self._tracking(tp, [record])
        with contextlib.suppress(IntegrityError):  # someone recorded past it already
            await self._with_store(lambda: asyncio.to_thread(self._commit_only, tracking))

    def _commit_only(self, tracking: Tracking) -> None:
        """Records a position with nothing else (in a worker thread)."""
        self.store.unit_of_work().commit(tracking)

    async def _apply_batch(
        self, tp: TopicPartition, records: list[Record], dead_lettered: set[int]
    ) -> bool:
        """Applies and commits `records` in one transaction. Raises `_BatchDone` when
        another writer recorded past them, `_AggregateConflict` when conflicts persist,
        `_StoreRefused` when the store refuses what the batch produced."""
        crashed: dict[int, str] = {}
        conflicts = 0
        while conflicts < AGGREGATE_CONFLICT_ATTEMPTS:
            try:
                return await self._with_store(
                    lambda: self._attempt(tp, records, crashed, dead_lettered)
                )
            except _HandlerCrashed as crash:
                log.error("handler_crashed", topic=tp.topic, offset=crash.offset, error=str(crash))
                crashed[crash.offset] = crash.detail
            except IntegrityError as conflict:
                conflicts += 1
                await self._after_conflict(tp, records, conflict)
            except Stopped:
                raise
            except Exception as error:
                raise _StoreRefused(f"{type(error).__name__}: {error}"[:2000]) from error
        raise _AggregateConflict(f"still conflicting after {AGGREGATE_CONFLICT_ATTEMPTS} tries")

    async def _attempt(
        self,
        tp: TopicPartition,
        records: list[Record],
        crashed: dict[int, str],
        dead_lettered: set[int],
    ) -> bool:
        """One try, always on fresh state: a failed commit leaves nothing to commit again
        (the events were handed to the store), so every retry applies the batch anew.
        Returns whether anything was stored. A batch that changed nothing (every message
        read past or a duplicate) records its position at most once a second: reading
        those messages again after a restart changes nothing either."""
        chunk = await asyncio.to_thread(self._apply, {tp: records}, crashed)
        try:
            await self._send_dead_letters(chunk.refusals, dead_lettered)
        except BaseException:
            await asyncio.to_thread(chunk.unit_of_work.discard)
            raise
        return await self._commit_or_defer(chunk, {tp: records})

    def _read_past_whole(self, tp: TopicPartition, records: list[Record]) -> bool:
        """Reads past a batch of event types this service does not handle (their headers
        say so) whose partition had its position recorded within the second, and says
        whether it did: what `_attempt` would decide, without a worker thread and an empty
        unit of work. At light load most batches a service sees are such (billing reads
        past nearly every ticket event). The position waits for
        `_record_unrecorded_positions`."""
        if not self._recorded_lately(tp):
            return False
        if not all(self._reads_past(r, _header(r, EVENT_TYPE_HEADER)) for r in records):
            return False
        self._unrecorded[tp] = records[-1].offset + 1
        return True

    def _recorded(self, tp: TopicPartition) -> None:
        self._recorded_at[tp] = time.monotonic()
        self._unrecorded.pop(tp, None)

    async def _record_unrecorded_positions(self) -> None:
        """Records, once their second is up, the positions of batches that changed nothing
        (so a restart, or the gateway's readiness, sees how far this consumer read)."""
        for tp, position in list(self._unrecorded.items()):
            if self._recorded_lately(tp):
                continue
            tracking = Tracking(self.tracking_name(tp), position)
            with contextlib.suppress(IntegrityError):  # someone recorded past it already
                await self._with_store(partial(asyncio.to_thread, self._commit_only, tracking))
            self._recorded(tp)

    def _recorded_lately(self, tp: TopicPartition) -> bool:
        return time.monotonic() - self._recorded_at.get(tp, -1e9) < RECORD_IDLE_POSITION_EVERY

    async def _after_conflict(
        self, tp: TopicPartition, records: list[Record], conflict: IntegrityError
    ) -> None:
        """Tells a tracking conflict (raises `_BatchDone`) from an aggregate conflict
        (returns, after a short pause, so the batch is applied again on fresh state)."""
        recorded = await self._with_store(
            lambda: asyncio.to_thread(self.store.position, self.tracking_name(tp))
        )
        end = records[-1].offset + 1
        if recorded is not None and recorded >= end:
            log.info("batch_recorded_elsewhere", topic=tp.topic, end=end, recorded=recorded)
            if recorded > end:
                self._next_offset[tp] = recorded
                self._consumer.seek(tp, recorded)
            raise _BatchDone
        log.info("aggregate_conflict_retrying", topic=tp.topic, error=str(conflict)[:300])
        await asyncio.sleep(0.05)

    async def _with_store(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Runs a store operation, waiting out an unreachable database; health reports the
        service not ready meanwhile."""

        def unavailable(_: BaseException) -> None:
            self.ready = False
            STORE_RETRIES.inc()

        result = await retry(
            operation,
            retry_on=INFRASTRUCTURE_ERRORS,
            stop=self._stop,
            what="event store",
            backoff=Backoff(first=0.2, longest=5.0),
            on_retry=unavailable,
        )
        self.ready = True
        return result

    def _tracking(self, tp: TopicPartition, records: list[Record]) -> Tracking:
        return Tracking(self.tracking_name(tp), records[-1].offset + 1)

    def _apply(
        self, batches: Mapping[TopicPartition, list[Record]], crashed: dict[int, str]
    ) -> _AppliedChunk:
        """Runs in a worker thread: the stores are synchronous. Applies the batches (of one
        partition, or of every partition of a fetch) through one unit of work, whose
        tracking records each one's position. A failure discards what the batch changed
        so far (a projection's open transaction is rolled back). `crashed`: offsets (of
        a lone partition) whose handler crashed before, refused now."""
        tracking = positions([self._tracking(tp, records) for tp, records in batches.items()])
        chunk = _AppliedChunk(self.store.unit_of_work(), tracking)
        try:
            routed = [
                (record, None if record.offset in crashed else self._route(record))
                for batch in batches.values()
                for record in batch
            ]
            self._prefetch((route for _, route in routed), chunk.unit_of_work)
            for record, route in routed:
                if record.offset in crashed:
                    refused: _Refusal | None = _Refusal(
                        record, "handler_error", crashed[record.offset]
                    )
                else:
                    refused = self._apply_one(record, route, chunk.unit_of_work)
                if refused is not None:
                    chunk.refusals.append(refused)
                    self._decide_refused(refused, chunk.unit_of_work)
        except BaseException:
            chunk.unit_of_work.discard()
            raise
        return chunk

    @staticmethod
    def _prefetch(routes: Iterable[_Route], uow: TrackedUnitOfWork) -> None:
        read_ahead(uow, [route for route in routes if isinstance(route, tuple)])

    def _apply_one(self, record: Record, routed: _Route, uow: TrackedUnitOfWork) -> _Refusal | None:
        if not isinstance(routed, tuple):
            return routed
        message, handler = routed
        if uow.already_applied(message.event_id):
            uow.after_commit(DUPLICATES_SKIPPED.labels(record.topic).inc)
            return None
        mark = uow.events_mark()
        try:
            handler(message, uow)
        except Rejected as rejected:
            # Decided: the same message again (a relay republishing for a new broker) is a
            # duplicate, not a second refusal.
            uow.mark_applied(message.event_id)
            return _Refusal(record, rejected.reason, rejected.detail)
        except (*INFRASTRUCTURE_ERRORS, IntegrityError):
            raise  # the database is away, or another writer came first: not the message's
        except Exception as error:
            raise _HandlerCrashed(record.offset, error) from error
        uow.mark_applied(message.event_id)
        if record.topic in self.command_topics:
            uow.record_outcome(message, "applied", produced=uow.produced_since(mark))
            about = message_fields(message)
            uow.after_commit(lambda: log.info("command_applied", topic=record.topic, **about))
        return None

    def _decide_refused(self, refusal: _Refusal, uow: TrackedUnitOfWork) -> None:
        """A refused command is decided, with the refusal, if its id can be read."""
        if refusal.record.topic not in self.command_topics:
            return
        command = command_of(refusal.record.value)
        if command is not None:
            uow.record_outcome(command, "refused", reason=refusal.reason, detail=refusal.detail)

    def _route(self, record: Record) -> _Route:
        """The message and its handler; None to read past it; or why it is refused."""
        if self._reads_past(record, _header(record, EVENT_TYPE_HEADER)):
            return None
        try:
            message = decode(record.value)
        except InvalidMessage as invalid:
            if invalid.reason == "unknown_type" and record.topic not in self.command_topics:
                return None  # a newer producer's type, without a header: read past it
            return _Refusal(record, invalid.reason, invalid.detail)
        handler = self.handlers.get(message.event_type)
        if handler is not None:
            return message, handler
        if record.topic in self.command_topics:
            detail = f"{self.service} does not handle {message.event_type}"
            return _Refusal(record, "unknown_type", detail)
        return None  # a type this service does not use: read past it

    def _reads_past(self, record: Record, event_type: str | None) -> bool:
        """A message on an event topic whose type this service does not handle is read
        past without parsing it. `event_type` None: not known yet."""
        return (
            event_type is not None
            and event_type not in self.handlers
            and record.topic not in self.command_topics
        )

    async def _send_dead_letters(self, refusals: list[_Refusal], sent: set[int]) -> None:
        for refusal in refusals:
            record = refusal.record
            if record.offset in sent:
                continue  # a retried batch: it went out the first time
            command = command_of(record.value)
            await dead_letter(
                self.producer,
                causation_id=str(command.event_id) if command is not None else None,
                service=self.service,
                source_topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                value=record.value,
                reason=refusal.reason,
                detail=refusal.detail,
                stop=self._stop,
            )
            sent.add(record.offset)

    async def seek_to_recorded(self, assigned: set[TopicPartition]) -> None:
        """Resumes newly assigned partitions from the positions recorded in the store. The
        store is read in a worker thread, the seeks are made here, on the event loop:
        aiokafka is not thread-safe, and a seek from another thread once raced a fetch
        being drained (a KeyError in its fetcher that stopped the service)."""
        positions = await self._with_store(
            lambda: asyncio.to_thread(self._recorded_positions, assigned)
        )
        for tp, position in positions.items():
            self._next_offset[tp] = position
            self._consumer.seek(tp, position)
            log.info("resuming", topic=tp.topic, partition=tp.partition, offset=position)

    def _recorded_positions(self, assigned: set[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.store.position(self.tracking_name(tp)) or 0 for tp in assigned}

    async def _report_lag(self) -> None:
        self._lag_reported = time.monotonic()
        lag_by_topic: dict[str, int] = {}
        for tp in self._consumer.assignment():
            end = self._consumer.highwater(tp)
            if end is None:
                continue
            position = await self._consumer.position(tp)
            lag_by_topic[tp.topic] = lag_by_topic.get(tp.topic, 0) + max(end - position, 0)
        for topic, lag in lag_by_topic.items():
            CONSUMER_LAG.labels(topic).set(lag)


class _StoreRefused(Exception):
    pass


@dataclass(frozen=True)
class CommandRef:
    """What a refused command's outcome needs, read leniently from its raw bytes."""

    event_id: uuid.UUID
    event_type: str
    correlation_id: uuid.UUID | None


def command_of(value: bytes | None) -> CommandRef | None:
    """The envelope ids of a message that may not pass its contract; None when unreadable."""
    if value is None or len(value) > MAX_MESSAGE_BYTES:
        return None
    try:
        raw = load_json(value)
        event_id = uuid.UUID(str(raw["event_id"]))
        correlation = raw.get("correlation_id")
        return CommandRef(
            event_id=event_id,
            event_type=str(raw.get("event_type", "unknown"))[:100],
            correlation_id=uuid.UUID(str(correlation)) if correlation else None,
        )
    except (ValueError, TypeError, KeyError, AttributeError):  # TooDeep is a ValueError
        return None


def read_ahead(uow: ReadsAhead, handled: Sequence[tuple[Message, Handler]]) -> None:
    """Reads ahead, for a whole batch, what applying it will ask the store: whether each
    message was applied before, and the aggregates its handler names. The consumer does
    this for every batch; whatever applies messages outside it (a rebuild, a benchmark)
    does the same, so that it measures and behaves as the consumer does."""
    uow.prefetch(
        [message.event_id for message, _ in handled],
        [i for message, handler in handled for i in reads_of(handler, message)],
    )


def reads_of(handler: Handler, message: Message) -> Iterable[uuid.UUID]:
    """The aggregates a handler said it reads for `message` (a plain function: none)."""
    reads = getattr(handler, "reads", None)
    return () if reads is None else reads(message)  # type: ignore[no-any-return]


def _header(record: Record, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            try:
                return bytes(value).decode()
            except UnicodeDecodeError:
                return None
    return None


class _SeekToRecordedPositions(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: TrackedConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._consumer.seek_to_recorded(assigned)
