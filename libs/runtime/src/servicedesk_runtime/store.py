"""The event store of a service and the unit of work its handlers change it through.

Exactly-once effect: a batch of Kafka messages is applied to aggregates in memory, and the
new events are written in ONE transaction together with the Kafka position they came from
(eventsourcing's tracking record, one tracking name per broker incarnation, topic and
partition). Each applied message also leaves a tiny `Received` marker keyed by its
`event_id`, so a message delivered again at another offset (a relay that republished, a new
broker) is recognised and skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeVar

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import ProcessRecorder, Tracking

from servicedesk_runtime.database import DatabaseUrl
from servicedesk_runtime.logs import get_logger

log = get_logger(__name__)
A = TypeVar("A", bound=Aggregate)
_MARKER_NAMESPACE = uuid.UUID("0b7a3f52-0c57-4a43-8d6c-4a0f5f1e7d21")


class Received(Aggregate):
    """Marks one consumed message (by `event_id`) as applied."""

    @staticmethod
    def id_for(event_id: uuid.UUID) -> uuid.UUID:
        return uuid.uuid5(_MARKER_NAMESPACE, str(event_id))

    @staticmethod
    def create_id(event_id: uuid.UUID) -> uuid.UUID:  # type: ignore[override]
        return Received.id_for(event_id)

    @event("Applied")
    def __init__(self, event_id: uuid.UUID) -> None:
        self.event_id = event_id


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
        # Hot aggregates (the reference sequence, agreement copies) are read for every
        # message; the cache fast-forwards them with newer events instead of replaying all.
        super().__init__(env={**database.eventsourcing_env(), "AGGREGATE_CACHE_MAXSIZE": "10000"})

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

    def save_with_tracking(
        self, aggregates: Iterable[Aggregate], tracking: Tracking | None
    ) -> None:
        processing = ProcessingEvent[uuid.UUID](tracking)
        processing.collect_events(*aggregates)
        self._record(processing)


class UnitOfWork:
    """Aggregates loaded and changed while applying a batch; saved in one transaction."""

    def __init__(self, store: ServiceStore) -> None:
        self.store = store
        self._aggregates: dict[uuid.UUID, Aggregate] = {}
        self._markers: set[uuid.UUID] = set()
        self._effects: list[Callable[[], None]] = []
        self._spent = False

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
            try:
                found = self.store.repository.get(aggregate_id)
            except AggregateNotFoundError:
                return None
            self._aggregates[aggregate_id] = found
        if not isinstance(found, kind):
            raise TypeError(f"aggregate {aggregate_id} is a {type(found).__name__}, not {kind}")
        return found

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
        self._aggregates[aggregate.id] = aggregate

    def events_mark(self) -> dict[uuid.UUID, int]:
        """How many pending events each aggregate has now (see `produced_since`)."""
        return {key: len(a.pending_events) for key, a in self._aggregates.items()}

    def produced_since(self, mark: dict[uuid.UUID, int]) -> list[dict[str, Any]]:
        """The events recorded since `mark` (markers and outcomes aside)."""
        produced = []
        for key, aggregate in self._aggregates.items():
            if isinstance(aggregate, Received | CommandOutcome):
                continue
            for pending in aggregate.pending_events[mark.get(key, 0) :]:
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
        outcome_id = CommandOutcome.id_for(command.event_id)
        if outcome_id in self._aggregates or self.get(outcome_id, CommandOutcome) is not None:
            return
        decided = CommandOutcome(
            command_id=command.event_id,
            command_type=command.event_type,
            correlation_id=str(command.correlation_id or command.event_id),
            outcome=outcome,
            reason=reason,
            # As text that always encodes (a refusal may quote a lone surrogate it refused).
            detail=_printable(detail[:2000]) if detail else detail,
            produced=produced or [],
            actor=_actor_of(command),
        )
        # Saved first in the transaction: in the notification log it precedes the events it
        # lists, so the relay knows their cause when it publishes them.
        self._aggregates = {decided.id: decided, **self._aggregates}

    def already_applied(self, event_id: uuid.UUID) -> bool:
        marker_id = Received.id_for(event_id)
        if marker_id in self._markers:
            return True
        return bool(self.store.recorder.select_events(marker_id, limit=1))

    def mark_applied(self, event_id: uuid.UUID) -> None:
        marker = Received(event_id=event_id)
        self._markers.add(marker.id)
        self._aggregates[marker.id] = marker

    def discard(self) -> None:
        """Forgets what was changed: nothing was written yet."""
        self._aggregates.clear()
        self._markers.clear()
        self._effects.clear()
        self._spent = True

    def commit(self, tracking: Tracking | None = None) -> None:
        """Saves every changed aggregate (and `tracking`) in one transaction. Once only:
        saving hands the pending events over even when the transaction then fails, so a
        second try would record the position without them. Retry with a new unit of work."""
        if self._spent:
            raise RuntimeError("a unit of work is committed at most once; start a new one")
        self._spent = True
        changed = [a for a in self._aggregates.values() if a.pending_events]
        if changed or tracking is not None:
            self.store.save_with_tracking(changed, tracking)
        self._aggregates.clear()
        self._markers.clear()
        effects, self._effects = self._effects, []
        for effect in effects:
            try:
                effect()
            except Exception:  # an effect must not undo or repeat what is committed
                log.exception("after_commit_effect_failed")


def _actor_of(command: Any) -> dict[str, Any] | None:
    actor = getattr(command, "actor", None)
    return None if actor is None else dict(actor.model_dump(mode="json"))


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
