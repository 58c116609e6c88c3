"""The event store of a service and the unit of work its handlers change it through.

Exactly-once effect: a batch of Kafka messages is applied to aggregates in memory, and the
new events are written in ONE transaction together with the Kafka position they came from
(eventsourcing's tracking record, one tracking name per broker incarnation, topic and
partition; a batch of several partitions records each one's, see `recorders.Positions`).
Each applied message also leaves a tiny `Received` marker keyed by its `event_id`, so a
message delivered again at another offset (a relay that republished, a new broker) is
recognised and skipped.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar, TypeVar

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    project_aggregate,
)
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import ProcessRecorder, Tracking
from eventsourcing.postgres import PostgresAggregateRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder
from psycopg.sql import SQL, Composed, Identifier

from servicedesk_runtime.database import DatabaseUrl
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.recorders import ComposedOnce

log = get_logger(__name__)
A = TypeVar("A", bound=Aggregate)
T = TypeVar("T")
_MARKER_NAMESPACE = uuid.UUID("0b7a3f52-0c57-4a43-8d6c-4a0f5f1e7d21")


class Received(Aggregate):
    """Marks one consumed message (by `event_id`) as applied. Its id is derived from the
    `event_id`, so its one event carries nothing else (markers are a third of the rows
    of a service that consumes events)."""

    Applied: ClassVar[type[Any]]

    @staticmethod
    def id_for(event_id: uuid.UUID) -> uuid.UUID:
        return uuid.uuid5(_MARKER_NAMESPACE, str(event_id))

    @classmethod
    def of(cls, event_id: uuid.UUID) -> Received:
        return cls._create(cls.Applied, id=cls.id_for(event_id))

    @event("Applied")
    def __init__(self) -> None:
        """Markers stored before carried the `event_id` too: it is ignored."""


_OUTCOME_NAMESPACE = uuid.UUID("6f0c2d1e-7a4b-4c3d-9e8f-1a2b3c4d5e6f")


class CommandOutcome(Aggregate):
    """How a command addressed to this service was decided, stored with what it changed
    (in the same transaction), and published as `CommandDecided`. `produced` lists the
    stored events the command caused as `{subject_id, version, event}`: the relay gives
    their messages the command as `causation_id`."""

    Decided: ClassVar[type[Any]]

    @staticmethod
    def id_for(command_id: uuid.UUID) -> uuid.UUID:
        return uuid.uuid5(_OUTCOME_NAMESPACE, str(command_id))

    @staticmethod
    def create_id(command_id: uuid.UUID, **_: Any) -> uuid.UUID:  # type: ignore[override]
        return CommandOutcome.id_for(command_id)

    @event("Decided")
    def __init__(
        self,
        command_id: uuid.UUID,
        command_type: str,
        correlation_id: str,
        outcome: str,
        reason: str | None,
        detail: str | None,
        produced: list[dict[str, Any]],
        actor: dict[str, Any] | None = None,
    ) -> None:
        self.command_id = command_id
        self.outcome = outcome


class ServiceStore(Application[uuid.UUID]):
    """A service's eventsourcing application, with a process recorder so that events and
    tracking positions are written together."""

    name = "servicedesk"

    def __init__(self, database: DatabaseUrl, name: str) -> None:
        type(self).name = name.replace("-", "_")
        self.url = database
        super().__init__(env=database.eventsourcing_env())
        self.cache = AggregateCache()

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    @property
    def process_recorder(self) -> ProcessRecorder:
        recorder = self.recorder
        assert isinstance(recorder, ProcessRecorder)
        return recorder

    def position(self, tracking_name: str) -> int | None:
        """Next Kafka offset to read for a tracking name, None when never consumed."""
        return self.process_recorder.max_tracking_id(tracking_name)

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self)

    def versions_of(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        """The stored version of each of `ids` that exists, in one query per 500 ids."""
        versions: dict[uuid.UUID, int] = {}
        for chunk in in_chunks(ids):
            versions.update(_versions_of(self.recorder, chunk))
        return versions

    def load(
        self, aggregate_id: uuid.UUID, cached: Aggregate | None, stored_version: int | None = None
    ) -> Aggregate | None:
        """The aggregate as stored: `cached` brought up to date with the events stored after
        it, or read whole (from its snapshot if it has one); None when it does not exist.
        With a `stored_version` (read ahead) of few events, their replay is cheaper than
        asking for a snapshot first (and right whether one exists or not)."""
        if cached is None and stored_version is not None and stored_version < FEW_EVENTS:
            return project_aggregate(None, self.events.get(aggregate_id))  # type: ignore[arg-type]
        if cached is None:
            try:
                return self.repository.get(aggregate_id)
            except AggregateNotFoundError:
                return None
        newer = self.events.get(aggregate_id, gt=cached.version)
        return project_aggregate(cached, newer)  # type: ignore[arg-type]

    def save_with_tracking(
        self, aggregates: Iterable[Aggregate], tracking: Tracking | None
    ) -> None:
        processing = ProcessingEvent[uuid.UUID](tracking)
        # What `processing.collect_events` does, without its two runtime Protocol checks
        # per aggregate (a tenth of a ticket's CPU in a burst).
        for aggregate in aggregates:
            processing.events.extend(aggregate.collect_events())
            processing.aggregates[aggregate.id] = aggregate
        self._record(processing)


class UnitOfWork:
    """Aggregates loaded and changed while applying a batch; saved in one transaction."""

    def __init__(self, store: ServiceStore) -> None:
        self.store = store
        self._aggregates: dict[uuid.UUID, Aggregate] = {}
        self._applied: set[uuid.UUID] = set()
        """Messages applied in this unit of work (by `event_id`)."""
        self._effects: list[Callable[[], None]] = []
        self._spent = False
        self._stored: dict[uuid.UUID, int] = {}
        """Versions read ahead by `prefetch` (ids not in it were read ahead and absent)."""
        self._read_ahead: set[uuid.UUID] = set()
        self._outcomes: dict[uuid.UUID, dict[str, Any]] = {}
        """How the commands decided here were decided, by command id: saved first (see
        `record_outcome` and `_decided`)."""
        self._touched: dict[uuid.UUID, int] = {}
        """Pending events of each aggregate touched since `events_mark`, when first touched."""

    def prefetch(
        self, message_ids: Iterable[uuid.UUID], aggregate_ids: Iterable[uuid.UUID]
    ) -> None:
        """Reads ahead, in one query, what applying a batch will ask: whether these
        messages were applied (and decided), and which of these aggregates exist at which
        version. Later questions about them cost no round trip; answers are the same."""
        wanted = {Received.id_for(i) for i in message_ids}
        wanted |= {CommandOutcome.id_for(i) for i in message_ids}
        wanted |= set(aggregate_ids)
        wanted -= self._aggregates.keys() | self._read_ahead
        if not wanted:
            return
        self._stored.update(self.store.versions_of(list(wanted)))
        self._read_ahead |= wanted

    def after_commit(self, effect: Callable[[], None]) -> None:
        """Runs `effect` once, after this unit of work has been committed. Handlers may run
        again on a retry (a conflict, a lost connection), so anything outside the database
        (a metric, a log line) belongs here, never inline. A unit of work that is thrown
        away runs none of its effects."""
        self._effects.append(effect)

    def get(self, aggregate_id: uuid.UUID, kind: type[A]) -> A | None:
        """The aggregate as changed so far in this unit of work, or as stored, or None."""
        found = self._aggregates.get(aggregate_id)
        if found is None:
            found = self._load(aggregate_id)
            if found is None:
                return None
            self._aggregates[aggregate_id] = found
        if not isinstance(found, kind):
            raise TypeError(f"aggregate {aggregate_id} is a {type(found).__name__}, not {kind}")
        self._touched.setdefault(aggregate_id, len(found.pending_events))
        return found

    def _load(self, aggregate_id: uuid.UUID) -> Aggregate | None:
        """As stored. A cached copy is taken out of the store's cache while this unit of
        work holds it (another one meanwhile reads the database), and is brought up to
        date unless `prefetch` saw that it is."""
        read_ahead = aggregate_id in self._read_ahead
        if read_ahead and aggregate_id not in self._stored:
            return None
        cached = self.store.cache.take(aggregate_id)  # given back only when committed
        if cached is not None and read_ahead and self._stored[aggregate_id] == cached.version:
            return cached
        return self.store.load(aggregate_id, cached, self._stored.get(aggregate_id))

    def get_or_create(self, aggregate_class: type[A], /, **create: Any) -> A:
        """The aggregate `aggregate_class.create_id(**create)` names, made with
        `aggregate_class(**create)` if it does not exist yet; either way registered to be
        saved."""
        found = self.get(aggregate_class.create_id(**create), aggregate_class)
        if found is None:
            found = aggregate_class(**create)
        self.add(found)
        return found

    def add(self, aggregate: Aggregate) -> None:
        """Registers a new or changed aggregate to be saved."""
        known = self._aggregates.setdefault(aggregate.id, aggregate)
        # New in this message (all its events are), unless `get` saw it first.
        self._touched.setdefault(
            aggregate.id, 0 if known is aggregate else len(known.pending_events)
        )
        self._aggregates[aggregate.id] = aggregate

    def events_mark(self) -> dict[uuid.UUID, int]:
        """Starts following the aggregates a message touches (see `produced_since`): the
        mark fills in as they are touched, so a batch of many messages costs no scan."""
        self._touched = {}
        return self._touched

    def produced_since(self, mark: dict[uuid.UUID, int]) -> list[dict[str, Any]]:
        """The events recorded since `mark` (markers and outcomes are kept apart)."""
        produced = []
        for key, before in mark.items():
            aggregate = self._aggregates.get(key)
            if aggregate is None:
                continue
            for pending in aggregate.pending_events[before:]:
                item = {
                    "subject_id": str(pending.originator_id),
                    "version": pending.originator_version,
                    "event": type(pending).__qualname__,
                }
                reference = getattr(pending, "reference", None)  # a ticket's SD-000123
                if isinstance(reference, str):
                    item["reference"] = reference
                produced.append(item)
        return produced

    def record_outcome(
        self,
        command: Any,
        outcome: str,
        *,
        reason: str | None = None,
        detail: str | None = None,
        produced: list[dict[str, Any]] | None = None,
    ) -> None:
        """Records how a command was decided, once: a command decided before (refused, and
        delivered again) keeps its first outcome. `command` is the message, or anything
        with `event_id`, `event_type` and `correlation_id`."""
        command_id = command.event_id
        if command_id in self._outcomes or self._decided_before(command_id):
            return
        self._outcomes[command_id] = {
            "command_id": command_id,
            "command_type": command.event_type,
            "correlation_id": str(command.correlation_id or command.event_id),
            "outcome": outcome,
            "reason": reason,
            # As text that always encodes (a refusal may quote a lone surrogate it refused).
            "detail": _printable(detail[:2000]) if detail else detail,
            "produced": produced or [],
            "actor": _actor_of(command),
        }

    def _decided_before(self, command_id: uuid.UUID) -> bool:
        """An outcome is stored under the outcome's own id, or under the marker's id when
        the command was applied in the same transaction (see `_decided`)."""
        return self._exists(CommandOutcome.id_for(command_id)) or self._exists(
            Received.id_for(command_id)
        )

    def already_applied(self, event_id: uuid.UUID) -> bool:
        """Applied before: by this unit of work, or stored with a `Received` marker (or a
        command's outcome in its place, see `_decided`). An outcome under its own id is no
        proof: one refused by its contract is decided but not applied, and a fixed copy is
        replayed under the same `event_id`."""
        return event_id in self._applied or self._exists(Received.id_for(event_id))

    def _exists(self, aggregate_id: uuid.UUID) -> bool:
        if aggregate_id in self._read_ahead:
            return aggregate_id in self._stored
        return bool(self.store.recorder.select_events(aggregate_id, limit=1))

    def mark_applied(self, event_id: uuid.UUID) -> None:
        """Remembers the message as applied: a `Received` marker is stored with the rest."""
        self._applied.add(event_id)

    def _decided(self) -> list[CommandOutcome]:
        """The outcomes decided here. The outcome of a command applied here is stored
        under the id of the command's `Received` marker, instead of the marker: one row
        proves both that the command was applied and how it was decided. One refused by its
        contract is not applied (a fixed copy may be replayed under the same `event_id`),
        so its outcome keeps its own id and proves nothing about applying."""
        return [
            CommandOutcome._create(CommandOutcome.Decided, id=Received.id_for(command_id), **kw)
            if command_id in self._applied
            else CommandOutcome(**kw)
            for command_id, kw in self._outcomes.items()
        ]

    def _markers(self) -> list[Received]:
        """A marker for each message applied here whose outcome does not stand for it."""
        return [Received.of(e) for e in self._applied if e not in self._outcomes]

    def discard(self) -> None:
        """Forgets what was changed: nothing was written yet (and what it took from the
        cache is read from the database next time)."""
        self._aggregates.clear()
        self._outcomes.clear()
        self._applied.clear()
        self._effects.clear()
        self._spent = True

    def is_empty(self) -> bool:
        """Nothing to store: no message applied, no aggregate changed."""
        return (
            not self._applied
            and not self._outcomes
            and not any(a.pending_events for a in self._aggregates.values())
        )

    def commit(self, tracking: Tracking | None = None) -> None:
        """Saves every changed aggregate (and `tracking`) in one transaction. Once only:
        saving hands the pending events over even when the transaction then fails, so a
        second try would record the position without them. Retry with a new unit of work."""
        if self._spent:
            raise RuntimeError("a unit of work is committed at most once; start a new one")
        self._spent = True
        changed = [
            # Outcomes first: in the notification log each precedes the events it lists, so
            # the relay knows their cause when it publishes them.
            *self._decided(),
            *(a for a in self._aggregates.values() if a.pending_events),
            *self._markers(),
        ]
        if changed or tracking is not None:
            # On failure nothing is given back to the cache: no half-changed copy stays.
            self.store.save_with_tracking(changed, tracking)
        self.store.cache.give(self._aggregates.values())
        self._aggregates.clear()
        self._outcomes.clear()
        self._applied.clear()
        effects, self._effects = self._effects, []
        for effect in effects:
            try:
                effect()
            except Exception:  # an effect must not undo or repeat what is committed
                log.exception("after_commit_effect_failed")


class AggregateCache:
    """The service's aggregates as last committed by this process, most recently used
    kept. A unit of work takes a copy out while it holds it and gives it back committed,
    so no two units of work ever change the same object; another writer (a replica, the
    timer loop) is noticed by the stored version, never trusted blindly."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._aggregates: OrderedDict[uuid.UUID, Aggregate] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, aggregate_id: uuid.UUID) -> Aggregate | None:
        with self._lock:
            return self._aggregates.pop(aggregate_id, None)

    def give(self, aggregates: Iterable[Aggregate]) -> None:
        with self._lock:
            for aggregate in aggregates:
                self._aggregates[aggregate.id] = aggregate
                self._aggregates.move_to_end(aggregate.id)
            while len(self._aggregates) > self.size:
                self._aggregates.popitem(last=False)

    def read(
        self, aggregate_id: uuid.UUID, version: int, read: Callable[[Aggregate], T]
    ) -> T | None:
        """`read` of the cached aggregate if it is at `version`, else None. It runs under
        the cache's lock: a copy in the cache is committed state that no unit of work holds
        (one takes it out before changing it)."""
        with self._lock:
            aggregate = self._aggregates.get(aggregate_id)
            if aggregate is None or aggregate.version != version:
                return None
            return read(aggregate)

    def __len__(self) -> int:
        return len(self._aggregates)


IDS_PER_QUERY = 500
"""Ids named in one `IN (...)` / `= ANY(...)` query, at most (well under both engines'
parameter limits)."""


def in_chunks(items: Sequence[T], size: int = IDS_PER_QUERY) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size` (one query each)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


FEW_EVENTS = 100
"""Fewer events than this are replayed without looking for a snapshot first."""


def _versions_of(recorder: Any, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """One query: the highest stored version of each of `ids` that has events."""
    if isinstance(recorder, PostgresAggregateRecorder):
        statement = _postgres_versions_statement(
            recorder.datastore.schema, recorder.events_table_name
        )
        with recorder.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(statement, (list(ids),), prepare=True)
            rows = cursor.fetchall()
        return {row["id"]: int(row["version"]) for row in rows if row["version"] is not None}
    assert isinstance(recorder, SQLiteAggregateRecorder), type(recorder)
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(
            sqlite_versions_query(recorder.events_table_name, len(ids)), [i.hex for i in ids]
        )
        rows = cursor.fetchall()
    return {uuid.UUID(row[0]): int(row[1]) for row in rows if row[1] is not None}


# Why one max() per id and not `max(...) GROUP BY originator_id`: the grouped form reads
# every event of every asked aggregate (a sequential scan on PostgreSQL once the table is
# big), so an aggregate that gains an event per ticket (intake's reference sequence) made
# every batch slower as history grew: 1.5 ms at 3,000 tickets, 24 ms at 100,000. A lone
# max() on the primary key is one step down the index on both engines.
def postgres_versions_query(schema: str, table: str) -> Composed:
    return SQL(
        "SELECT ids.id, (SELECT max(originator_version) FROM {schema}.{table} "
        "WHERE originator_id = ids.id) AS version FROM unnest(%s::uuid[]) AS ids(id)"
    ).format(schema=Identifier(schema), table=Identifier(table))


@functools.lru_cache(maxsize=8)
def _postgres_versions_statement(schema: str, table: str) -> ComposedOnce:
    return ComposedOnce(postgres_versions_query(schema, table))


def sqlite_versions_query(table: str, count: int) -> str:
    values = ",".join("(?)" for _ in range(count))
    return (
        f"WITH ids(id) AS (VALUES {values}) SELECT ids.id, (SELECT max(originator_version) "
        f"FROM {table} WHERE originator_id = ids.id) FROM ids"
    )


def _actor_of(command: Any) -> dict[str, Any] | None:
    actor = getattr(command, "actor", None)
    return None if actor is None else dict(actor.model_dump(mode="json"))


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
