"""Read models in plain SQL tables, applied exactly once in effect, like the event stores.

A projection's handlers change its tables through one open transaction per batch; the
batch's Kafka position (one tracking row per broker incarnation, topic and partition) and
an "applied" row per `event_id` are written in that same transaction. So the
`TrackedConsumer` drives a projection exactly as it drives a service's event store: resume
from the recorded position, skip a message applied before (a relay republishing for a new
broker), and tell a conflicting writer (another replica, this process before a crash) by
an `IntegrityError`.

Tables are named `<prefix>_positions` and `<prefix>_applied`, beside the projection's own.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterable

import psycopg
from eventsourcing.persistence import IntegrityError, Tracking

from servicedesk_runtime.database import Cursor, Database
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.recorders import each_position
from servicedesk_runtime.store import in_chunks

log = get_logger(__name__)

_DRIVER_INTEGRITY_ERRORS = (psycopg.IntegrityError, sqlite3.IntegrityError)


class ProjectionStore:
    """The bookkeeping of one projection: positions and applied markers."""

    def __init__(
        self,
        database: Database,
        prefix: str,
        read_ahead: Callable[[ProjectionUnitOfWork, list[uuid.UUID]], None] | None = None,
    ) -> None:
        self.database = database
        self.read_ahead = read_ahead
        """Reads a batch's named rows (its handlers' `reads`) in one go, in its transaction."""
        self.positions_table = database.table(f"{prefix}_positions")
        self.applied_table = database.table(f"{prefix}_applied")
        with database.transaction() as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self.positions_table} "
                "(tracking_name TEXT PRIMARY KEY, position BIGINT NOT NULL)"
            )
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self.applied_table} (event_id TEXT PRIMARY KEY)"
            )

    def position(self, tracking_name: str) -> int | None:
        """Next Kafka offset to read for a tracking name, None when never consumed."""
        with self.database.reading() as cursor:
            cursor.execute(
                f"SELECT position FROM {self.positions_table} WHERE tracking_name = ?",
                (tracking_name,),
            )
            row = cursor.fetchone()
        return None if row is None else int(row[0])

    def positions(self) -> dict[str, int]:
        with self.database.reading() as cursor:
            cursor.execute(f"SELECT tracking_name, position FROM {self.positions_table}")
            return {str(name): int(position) for name, position in cursor.fetchall()}

    def applied(self, event_id: uuid.UUID) -> bool:
        with self.database.reading() as cursor:
            cursor.execute(
                f"SELECT 1 FROM {self.applied_table} WHERE event_id = ?", (str(event_id),)
            )
            return cursor.fetchone() is not None

    def unit_of_work(self) -> ProjectionUnitOfWork:
        """Opens the batch's transaction: commit or discard it soon (on SQLite it holds the
        write lock)."""
        return ProjectionUnitOfWork(self)

    def forget(self, cursor: Cursor) -> None:
        """Empties the bookkeeping (inside the caller's transaction): the projection is
        rebuilt from the topics' beginning."""
        cursor.execute(f"DELETE FROM {self.positions_table}")
        cursor.execute(f"DELETE FROM {self.applied_table}")


class ProjectionUnitOfWork:
    """One batch's open transaction. `cursor` is for the handlers; `before_commit` hooks
    let a projection write once what many messages of the batch changed."""

    def __init__(self, store: ProjectionStore) -> None:
        self.store = store
        self._transaction = store.database.begin()
        self.cursor: Cursor = self._transaction.cursor
        self._applied: set[uuid.UUID] = set()
        self._applied_before: set[uuid.UUID] = set()
        self._read_ahead: set[uuid.UUID] = set()
        self._before: list[Callable[[], None]] = []
        self._effects: list[Callable[[], None]] = []
        self.state: dict[str, object] = {}
        """Room for a projection's in-batch state (e.g. rows changed but not yet written)."""

    def before_commit(self, write: Callable[[], None]) -> None:
        self._before.append(write)

    def after_commit(self, effect: Callable[[], None]) -> None:
        """Runs `effect` once the batch is committed (never for a batch thrown away)."""
        self._effects.append(effect)

    def prefetch(
        self, message_ids: Iterable[uuid.UUID], aggregate_ids: Iterable[uuid.UUID] = ()
    ) -> None:
        """Reads ahead which of a batch's messages were applied, in one query per 500 ids,
        and hands the rows its handlers named to the projection's `read_ahead`."""
        wanted = [str(i) for i in message_ids if i not in self._read_ahead]
        for chunk in in_chunks(wanted):
            self.cursor.execute(
                f"SELECT event_id FROM {self.store.applied_table} "
                f"WHERE event_id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            self._applied_before.update(uuid.UUID(row[0]) for row in self.cursor.fetchall())
            self._read_ahead.update(uuid.UUID(i) for i in chunk)
        named = list(dict.fromkeys(aggregate_ids))
        if named and self.store.read_ahead is not None:
            self.store.read_ahead(self, named)

    def already_applied(self, event_id: uuid.UUID) -> bool:
        if event_id in self._applied or event_id in self._applied_before:
            return True
        if event_id in self._read_ahead:
            return False
        self.cursor.execute(
            f"SELECT 1 FROM {self.store.applied_table} WHERE event_id = ?", (str(event_id),)
        )
        return self.cursor.fetchone() is not None

    def mark_applied(self, event_id: uuid.UUID) -> None:
        self._applied.add(event_id)

    def events_mark(self) -> dict[uuid.UUID, int]:
        return {}

    def produced_since(self, mark: dict[uuid.UUID, int]) -> list[dict[str, object]]:
        return []

    def record_outcome(self, command: object, outcome: str, **_: object) -> None:
        """Projections read event topics only: they decide no commands."""

    def is_empty(self) -> bool:
        """Nothing to write: no message applied."""
        return not self._applied and not self._before

    def commit(self, tracking: Tracking | None = None) -> None:
        """Writes the batch's changes, markers and position in its one transaction. A
        position not past the recorded one, or a marker another writer recorded meanwhile,
        raises `IntegrityError` and writes nothing."""
        try:
            for write in self._before:
                write()
            self._record(tracking)
            self._transaction.commit()
        except _DRIVER_INTEGRITY_ERRORS as conflict:
            self._transaction.rollback()
            raise IntegrityError(str(conflict)) from conflict
        except BaseException:
            self._transaction.rollback()
            raise
        for effect in self._effects:
            try:
                effect()
            except Exception:  # an effect must not undo or repeat what is committed
                log.exception("after_commit_effect_failed")

    def discard(self) -> None:
        """Rolls the batch back (a handler failed, a conflict): nothing of it stays."""
        self._transaction.rollback()

    def _record(self, tracking: Tracking | None) -> None:
        if self._applied:
            self.cursor.executemany(
                f"INSERT INTO {self.store.applied_table} (event_id) VALUES (?)",
                [(str(event_id),) for event_id in self._applied],
            )
        if tracking is None:
            return
        for position in each_position(tracking):
            self._record_position(position)

    def _record_position(self, tracking: Tracking) -> None:
        table = self.store.positions_table
        self.cursor.execute(
            f"UPDATE {table} SET position = ? WHERE tracking_name = ? AND position < ?",
            (tracking.notification_id, tracking.application_name, tracking.notification_id),
        )
        if self.cursor.rowcount == 1:
            return
        # No row yet (a unique violation if another writer inserts it first), or a row at
        # or past this position: someone recorded past this batch.
        self.cursor.execute(
            f"SELECT position FROM {table} WHERE tracking_name = ?", (tracking.application_name,)
        )
        if self.cursor.fetchone() is not None:
            raise IntegrityError(f"{tracking.application_name} is recorded past this batch")
        self.cursor.execute(
            f"INSERT INTO {table} (tracking_name, position) VALUES (?, ?)",
            (tracking.application_name, tracking.notification_id),
        )
