"""Snapshots of aggregates that gain events for as long as a service runs (intake's
reference sequence, a month's billing ledger), so that loading one after a restart reads
its latest snapshot and the few events after it instead of its whole history.

A snapshot is an optimisation, never the truth: it is written after the events it
summarises are committed, in a transaction of its own, and only of state as committed. A
crash before it is written loses nothing (the next one is taken later, loading meanwhile
replays more); a snapshot that already exists at that version is the same state and is
left as it is.
"""

from __future__ import annotations

import uuid
from weakref import WeakKeyDictionary

from eventsourcing.domain import Aggregate, Snapshot
from eventsourcing.persistence import IntegrityError

from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.store import ServiceStore, UnitOfWork

log = get_logger(__name__)


def snapshot_when_committed(uow: UnitOfWork, aggregate: Aggregate) -> None:
    """Snapshots `aggregate` at the version it has now, once `uow` has committed it. Call
    it after the handler's last change to the aggregate; called again in the same unit of
    work (a batch), only the latest version is snapshotted. The state is read back from
    the store at that version (the latest snapshot and the events since): the object in
    memory may by then hold changes of a later unit of work that are not committed."""
    wanted = _wanted.get(uow)
    if wanted is None:
        wanted = _wanted[uow] = {}
        store = uow.store
        uow.after_commit(lambda: _put_each(store, wanted))
    wanted[aggregate.id] = aggregate.version


_wanted: WeakKeyDictionary[UnitOfWork, dict[uuid.UUID, int]] = WeakKeyDictionary()
"""Per unit of work: the version to snapshot each aggregate at, once it is committed."""


def _put_each(store: ServiceStore, wanted: dict[uuid.UUID, int]) -> None:
    for aggregate_id, version in wanted.items():
        _put_stored(store, aggregate_id, version)


def snapshot_if_behind(store: ServiceStore, aggregate_id: uuid.UUID, interval: int) -> None:
    """Snapshots the stored aggregate when `interval` or more events were stored after its
    latest snapshot (a store written before snapshots existed: once, at a service's start,
    so that its next start and its first command read little)."""
    last = store.recorder.select_events(aggregate_id, desc=True, limit=1)
    if not last or store.snapshots is None:
        return
    snapshots = store.snapshots.recorder.select_events(aggregate_id, desc=True, limit=1)
    since = snapshots[0].originator_version if snapshots else 0
    if last[0].originator_version - since >= interval:
        _put_stored(store, aggregate_id, last[0].originator_version)


def _put_stored(store: ServiceStore, aggregate_id: uuid.UUID, version: int) -> None:
    """The stored state at `version` (from the snapshot before it and the events since)."""
    if store.snapshots is None:
        return
    aggregate: Aggregate = store.repository.get(aggregate_id, version=version)
    _put(store, Snapshot.take(aggregate))


def _put(store: ServiceStore, snapshot: Snapshot) -> None:
    assert store.snapshots is not None
    try:
        store.snapshots.put([snapshot])
    except IntegrityError:
        # Taken already at this version (by another replica after a restart): same state.
        log.info("snapshot_exists", aggregate_id=str(snapshot.originator_id))
