"""The transactional outbox: publish a service's stored events to Kafka, in order.

A command never writes to Kafka. Its events go to the service's event store; this relay
follows the store's notification log, translates each domain event into its contract
message and publishes it, then remembers how far it got. It learns of new events when
they are committed: from this process (`wake`), and on PostgreSQL from any process, by
LISTENing to the NOTIFY every insert sends; a slow poll is only the fallback. The position
is kept per broker incarnation, so a new (empty) embedded broker gets the whole log again.
The position is saved at most once a second while events flow (and when the relay is
caught up or stops): a crash publishes up to a second of events again, with the same
`event_id`s, and consumers skip those.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer
from eventsourcing.utils import get_topic
from psycopg import sql

from servicedesk_contracts import Message, topics
from servicedesk_contracts.envelope import STORED, Actor
from servicedesk_contracts.messages import CommandDecided, derived_id
from servicedesk_runtime.database import Database
from servicedesk_runtime.logs import get_logger, message_fields
from servicedesk_runtime.metrics import EVENTS_PUBLISHED, RELAY_ERRORS, RELAY_LAG
from servicedesk_runtime.retry import Backoff, Stopped, retry
from servicedesk_runtime.signals import first_of
from servicedesk_runtime.store import CommandOutcome, Received, ServiceStore

log = get_logger(__name__)

Translate = Callable[[Any], tuple[str, Message] | None]
"""Domain event -> (topic, message), or None for events that stay inside the service."""

_MARKER_TOPIC = get_topic(Received.Applied)
"""Markers are never published: the relay passes them without decoding them."""


class LogPositions:
    """How far a follower of the store's notification log got (the relay, the notifier's
    dispatcher), per key, in a small table of the service's own database."""

    def __init__(self, database: Database, table: str, key: str = "name") -> None:
        self._db = database
        self._table = database.table(table)
        self._key = key
        with database.transaction() as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} ("
                f"{key} TEXT PRIMARY KEY, position BIGINT NOT NULL)"
            )

    def get(self, key: str) -> int:
        with self._db.transaction() as cursor:
            cursor.execute(f"SELECT position FROM {self._table} WHERE {self._key} = ?", (key,))
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    def set(self, key: str, position: int) -> None:
        with self._db.transaction() as cursor:
            cursor.execute(
                f"INSERT INTO {self._table} ({self._key}, position) VALUES (?, ?) "
                f"ON CONFLICT ({self._key}) DO UPDATE SET position = excluded.position",
                (key, position),
            )


class RelayPositions(LogPositions):
    """How far the relay got, per broker incarnation."""

    def __init__(self, database: Database) -> None:
        super().__init__(database, "outbox_positions", key="incarnation")


class OutboxRelay:
    def __init__(
        self,
        *,
        service: str,
        store: ServiceStore,
        positions: RelayPositions,
        producer: AIOKafkaProducer,
        incarnation: str,
        translate: Translate,
        batch_max: int = 500,
        poll_interval: float = 1.0,
    ) -> None:
        self.service = service
        self.store = store
        self.positions = positions
        self.producer = producer
        self.incarnation = incarnation
        self.translate = translate
        self.batch_max = batch_max
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._position: int | None = None  # this relay is the only writer of its position
        self._saved: int | None = None
        self._saved_at = -1e9
        self._causes = _Causes()
        self.healthy = True

    def wake(self) -> None:
        """New events were stored in this process: publish them without waiting."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Publishes until `stop`. A round that fails (the database or the broker away, a
        broker that refuses for a while after a restart) is retried with capped backoff,
        never fatal: the log is still there when they are back, and nothing is skipped."""

        def failed(_: BaseException) -> None:
            self.healthy = False
            RELAY_ERRORS.inc()

        listening = asyncio.create_task(self._listen(stop), name="relay-listen")
        try:
            await self._publish_until(stop, failed)
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening
            with contextlib.suppress(Exception):  # else published again after the restart
                await self._save_position(at_once=True)

    async def _publish_until(
        self, stop: asyncio.Event, failed: Callable[[BaseException], None]
    ) -> None:
        while not stop.is_set():
            try:
                published = await retry(
                    self.publish_pending,
                    retry_on=(Exception,),
                    stop=stop,
                    what="outbox relay",
                    backoff=Backoff(first=0.2, longest=10.0),
                    on_retry=failed,
                )
            except Stopped:
                return
            self.healthy = True
            if published < self.batch_max:
                await first_of(self._wake, stop, timeout=self.poll_interval)

    async def _listen(self, stop: asyncio.Event) -> None:
        """Wakes the relay whenever another process commits events (PostgreSQL's NOTIFY,
        sent by every insert of the event store); nothing to do on SQLite, whose writers
        all live in this process. A lost connection is reopened; meanwhile the poll
        covers."""
        channel = getattr(self.store.recorder, "channel_name", None)
        ours = getattr(self.store.recorder, "origin", None)  # this process wakes us itself
        conninfo = self.store.url.conninfo()
        if channel is None or conninfo is None:
            return
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    conninfo, autocommit=True
                ) as connection:
                    await connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self.wake()  # whatever was committed before this LISTEN
                    await self._wake_on_notices(connection, ours, stop)
            except (psycopg.Error, OSError) as error:  # the socket, too, may be gone
                log.warning("relay_listen_failed", error=str(error)[:300])
                # Not a whole poll interval (it may be minutes): listening is what keeps
                # the relay prompt; the poll only covers the gap.
                await first_of(stop, timeout=min(self.poll_interval, LISTEN_RETRY_SECONDS))

    async def _wake_on_notices(
        self, connection: psycopg.AsyncConnection[Any], ours: str | None, stop: asyncio.Event
    ) -> None:
        """Wakes the relay for each NOTIFY not sent by this process, until `stop`. Waits on
        the connection's socket itself: psycopg's `notifies()` looks every 0.1 s, ten
        wake-ups a second in an idle service. Raises `psycopg.OperationalError` when the
        connection is lost (the server ends it: its socket turns readable)."""
        pgconn = connection.pgconn
        ours_bytes = None if ours is None else ours.encode()
        readable = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(pgconn.socket, readable.set)
        try:
            while not stop.is_set():
                await first_of(readable, stop, timeout=60)
                readable.clear()
                pgconn.consume_input()
                while (notice := pgconn.notifies()) is not None:
                    if notice.extra != ours_bytes:
                        self.wake()
        finally:
            loop.remove_reader(pgconn.socket)

    async def _save_position(self, at_once: bool = False) -> None:
        """Saves how far the relay published, if it moved: at once, or once its second is
        up (a transaction per round cost as much as the round's publishing)."""
        position = self._position
        if position is None or position == self._saved:
            return
        if not at_once and time.monotonic() - self._saved_at < SAVE_POSITION_EVERY:
            return
        await asyncio.to_thread(self.positions.set, self.incarnation, position)
        self._saved, self._saved_at = position, time.monotonic()

    def _translate(self, domain_event: Any) -> tuple[str, Message] | None:
        """The service's translation, plus what every service publishes alike: command
        outcomes, and the command as the cause of each event it produced."""
        if isinstance(domain_event, CommandOutcome.Decided):
            self._causes.remember(domain_event)
            return topics.COMMAND_OUTCOMES, _decided(domain_event, self.service)
        translated = self.translate(domain_event)
        if translated is None:
            return None
        topic, message = translated
        cause = self._causes.of(domain_event)
        if cause is not None:
            message = message.model_copy(
                update={
                    "causation_id": cause.command_id,
                    "correlation_id": message.correlation_id or cause.correlation_id,
                    "actor": message.actor or cause.actor,
                }
            )
        return topic, message

    async def publish_pending(self) -> int:
        """Publishes the next batch of stored events; returns how many were read."""
        if self._position is None:
            self._position = await asyncio.to_thread(self.positions.get, self.incarnation)
            self._saved = self._position
        position = self._position
        self._wake.clear()  # from here on, a commit wakes the next round
        notifications = await asyncio.to_thread(
            self.store.process_recorder.select_notifications, position + 1, self.batch_max
        )
        if not notifications:
            RELAY_LAG.set(0)
            await self._save_position(at_once=True)
            return 0
        sends, sent = [], []
        for notification in notifications:
            if notification.topic == _MARKER_TOPIC:
                continue
            translated = self._translate(self.store.mapper.to_domain_event(notification))
            if translated is None:
                continue
            topic, message = translated
            sends.append(
                await self.producer.send(
                    topic,
                    value=message.to_json(),
                    key=message.kafka_key(),
                    headers=message.kafka_headers(),
                )
            )
            sent.append((topic, message))
        await asyncio.gather(*sends)
        for topic, message in sent:
            EVENTS_PUBLISHED.labels(topic).inc()
            log.info("event_published", topic=topic, **message_fields(message))
        self._position = notifications[-1].id
        await self._save_position()
        last = self._position
        if len(notifications) < self.batch_max:
            RELAY_LAG.set(0)  # it read to the end of the log
        else:
            newest = await asyncio.to_thread(self.store.process_recorder.max_notification_id)
            RELAY_LAG.set(max((newest or 0) - last, 0))
        return len(notifications)


@dataclass(frozen=True)
class _Cause:
    command_id: uuid.UUID
    correlation_id: uuid.UUID
    actor: Actor | None


SAVE_POSITION_EVERY = 1.0
"""Seconds between two saves of the relay's position while events flow."""
LISTEN_RETRY_SECONDS = 1.0
"""Seconds before a lost LISTEN connection (PostgreSQL) is opened again."""


def _actor(decided: Any) -> Actor | None:
    """The outcome's actor (outcomes stored before actors travelled have none)."""
    stored = getattr(decided, "actor", None)
    return None if stored is None else Actor.model_validate(stored, context=STORED)


class _Causes:
    """Which command caused which stored event, learnt from the outcomes the relay passes
    (an outcome precedes its events in the log). Bounded: the events follow their outcome
    closely. A relay restarted between an outcome and its events publishes those events
    without a cause (their outcome still names them)."""

    LIMIT = 20_000
    """Events are committed with their outcome, so they are read in the same relay round
    or the next (a round is at most a few thousand). 100,000 were full only after about
    33,000 commands, while intake's memory kept growing."""

    def __init__(self) -> None:
        self._by_event: OrderedDict[tuple[str, int], _Cause] = OrderedDict()

    def remember(self, decided: Any) -> None:
        cause = _Cause(decided.command_id, uuid.UUID(decided.correlation_id), _actor(decided))
        for produced in decided.produced:
            self._by_event[(produced["subject_id"], produced["version"])] = cause
        while len(self._by_event) > self.LIMIT:
            self._by_event.popitem(last=False)

    def of(self, domain_event: Any) -> _Cause | None:
        key = (str(domain_event.originator_id), domain_event.originator_version)
        return self._by_event.get(key)


def _decided(decided: Any, service: str) -> Message:
    message: Message = CommandDecided.create(
        **envelope_of(decided, service),
        causation_id=decided.command_id,
        correlation_id=uuid.UUID(decided.correlation_id),
        actor=_actor(decided),
        data={
            "command_id": decided.command_id,
            "command_type": decided.command_type,
            "service": service,
            "outcome": decided.outcome,
            "reason": decided.reason,
            "detail": decided.detail,
            "produced": [
                {key: p[key] for key in ("subject_id", "event", "reference") if key in p}
                for p in decided.produced
            ],
        },
    )
    return message


def event_id_of(domain_event: Any) -> uuid.UUID:
    """A published event's id, derived from its place in its aggregate's history, so a
    republished event keeps its id and consumers recognise it."""
    return derived_id("event", domain_event.originator_id, domain_event.originator_version)


def envelope_of(domain_event: Any, producer: str) -> dict[str, Any]:
    """The envelope fields of the message for a stored domain event."""
    return {
        "event_id": event_id_of(domain_event),
        "occurred_at": domain_event.timestamp,
        "producer": producer,
        "subject_id": domain_event.originator_id,
    }


def message_for(event: Any, message: type[Message], producer: str, **values: Any) -> Message:
    """The contract message for a stored event whose attributes are named like the
    message's data fields (the usual case): each data field is taken from the event unless
    given in `values`; `subject_id`, when given, replaces the aggregate id as the subject."""
    data_model = message.model_fields["data"].annotation
    assert isinstance(data_model, type)
    envelope = envelope_of(event, producer)
    if "subject_id" in values:
        envelope["subject_id"] = values.pop("subject_id")
    fields = {
        name: getattr(event, name)
        for name in data_model.model_fields  # type: ignore[attr-defined]
        if name not in values and hasattr(event, name)
    }
    # Read as stored: a rule added since the event was accepted must not make it unpublishable.
    data = data_model.model_validate({**fields, **values}, context=STORED)  # type: ignore[attr-defined]
    return message.model_validate({**envelope, "data": data}, context=STORED)
