"""The due-time index of running clocks: a projection of the clock events.

It follows the sla-timer's own notification log (so no started clock is ever missed, even
after a crash) and keeps one row per pending timer of a clock (its breach, its warnings),
indexed by due time. For every clock an event touched, it replaces that clock's rows with
the timers the clock has now. Firing claims due rows with `FOR UPDATE SKIP LOCKED` on
PostgreSQL, so replicas never fire the same timer; the clock aggregate itself refuses to
fire anything twice. The table can be dropped and rebuilt from the log at any time.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from eventsourcing.application import project_aggregate
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from servicedesk_runtime.database import Cursor, Database
from servicedesk_runtime.store import ServiceStore
from servicedesk_sla_timer.domain import SlaClock

PROJECTION = "sla_timers"
CLOCK_EVENT_TOPICS = [
    get_topic(kind)
    for kind in vars(SlaClock).values()
    if isinstance(kind, type) and issubclass(kind, SlaClock.Event) and kind is not SlaClock.Event
]
"""The index reads only clock events from the log (not markers, outcomes, copies)."""


DueTimer = tuple[uuid.UUID, str, datetime]
"""(clock id, timer name such as "breach" or "warn:0.75", when it is due)."""


def _millis(instant: datetime) -> int:
    # Rounded up: a timer is never claimed before its exact due instant.
    return math.ceil(instant.timestamp() * 1000)


def _uuid(originator_id: uuid.UUID | str) -> uuid.UUID:
    return originator_id if isinstance(originator_id, uuid.UUID) else uuid.UUID(originator_id)


def _timers_of(clock: Any) -> dict[str, datetime]:
    assert isinstance(clock, SlaClock)
    timers: dict[str, datetime] = clock.timers()
    return timers


def _due_timer(row: tuple[Any, ...]) -> DueTimer:
    return uuid.UUID(row[0]), str(row[1]), datetime.fromtimestamp(int(row[2]) / 1000, UTC)


class DueTimers:
    def __init__(self, database: Database, store: ServiceStore) -> None:
        self.db = database
        self.store = store
        self.timers = database.table("sla_timers")
        self.positions = database.table("sla_projection_positions")
        with database.transaction() as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self.timers} ("
                "clock_id TEXT NOT NULL, timer TEXT NOT NULL, due_ms BIGINT NOT NULL, "
                "PRIMARY KEY (clock_id, timer))"
            )
            cursor.execute(f"CREATE INDEX IF NOT EXISTS sla_timers_due ON {self.timers} (due_ms)")
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self.positions} ("
                "name TEXT PRIMARY KEY, position BIGINT NOT NULL)"
            )
            cursor.execute(
                f"INSERT INTO {self.positions} (name, position) VALUES (?, 0) "
                "ON CONFLICT (name) DO NOTHING",
                (PROJECTION,),
            )

    def rebuild(self, on_progress: Callable[[int, int], None] = lambda done, total: None) -> int:
        """Drops every row and builds the index again from the whole log; returns how many
        events were read. Safe beside a running sla-timer: a catch-up of its own waits for
        the emptying, and the rows of a clock are replaced whole, whoever writes them."""
        with self.db.transaction() as cursor:
            cursor.execute(f"DELETE FROM {self.timers}")
            cursor.execute(
                f"UPDATE {self.positions} SET position = 0 WHERE name = ?", (PROJECTION,)
            )
        total = self.store.process_recorder.max_notification_id() or 0
        done = 0
        while read := self.catch_up():
            done += read
            on_progress(done, total)
        return done

    def catch_up(self, limit: int = 1000) -> int:
        """Applies the next clock events to the index; returns how many were read."""
        lock = " FOR UPDATE" if self.db.is_postgres else ""
        with self.db.transaction() as cursor:
            cursor.execute(
                f"SELECT position FROM {self.positions} WHERE name = ?{lock}", (PROJECTION,)
            )
            row = cursor.fetchone()
            position = int(row[0]) if row else 0
            notifications = self.store.process_recorder.select_notifications(
                position + 1, limit, topics=CLOCK_EVENT_TOPICS
            )
            self._replace_timers(cursor, self._timers_touched(notifications))
            if notifications:
                cursor.execute(
                    f"UPDATE {self.positions} SET position = ? WHERE name = ?",
                    (notifications[-1].id, PROJECTION),
                )
        return len(notifications)

    def _timers_touched(
        self, notifications: Sequence[Notification]
    ) -> dict[uuid.UUID, dict[str, datetime]]:
        """The pending timers of every clock these events touched. A clock this process
        committed is read from the store's cache when it is at the version of its last
        event here (no decoding: that was a fifth of the sla-timer's CPU in a burst). Any
        other is rebuilt from the batch when its whole history is in it (a new clock),
        else loaded; newer events are applied by the next catch-up."""
        latest = {_uuid(n.originator_id): n.originator_version for n in notifications}
        timers: dict[uuid.UUID, dict[str, datetime]] = {}
        for clock_id, version in latest.items():
            cached = self.store.cache.read(clock_id, version, _timers_of)
            if cached is not None:
                timers[clock_id] = cached
        events: dict[uuid.UUID, list[Any]] = {}
        for notification in notifications:
            if _uuid(notification.originator_id) not in timers:
                event = self.store.mapper.to_domain_event(notification)
                events.setdefault(event.originator_id, []).append(event)
        for clock_id, history in events.items():
            rebuilt = (
                project_aggregate(None, history) if history[0].originator_version == 1 else None
            )
            clock: Any = rebuilt or self.store.repository.get(clock_id)
            assert isinstance(clock, SlaClock)
            timers[clock_id] = clock.timers()
        return timers

    def _replace_timers(self, cursor: Cursor, timers: dict[uuid.UUID, dict[str, datetime]]) -> None:
        cursor.executemany(
            f"DELETE FROM {self.timers} WHERE clock_id = ?", [(str(c),) for c in timers]
        )
        rows = [
            (str(clock_id), timer, _millis(due_at))
            for clock_id, pending in timers.items()
            for timer, due_at in pending.items()
        ]
        if rows:
            cursor.executemany(
                f"INSERT INTO {self.timers} (clock_id, timer, due_ms) VALUES (?, ?, ?)", rows
            )

    @contextmanager
    def claim_due(self, now: datetime, limit: int = 500) -> Iterator[list[DueTimer]]:
        """Claims timers due at `now`. Those still in the list when the block succeeds are
        removed (the block takes out the ones that must stay); all stay, for the next
        attempt, when it fails. Firing twice is harmless (the clock refuses a second
        breach); the lock only keeps replicas from doing the same work."""
        select = (
            f"SELECT clock_id, timer, due_ms FROM {self.timers} WHERE due_ms <= ? "
            "ORDER BY due_ms LIMIT ?"
        )
        if not self.db.is_postgres:
            # SQLite has one writer: the block's own event-store commit must not wait for
            # a write lock held here, so read, run the block, then delete.
            with self.db.transaction() as cursor:
                cursor.execute(select, (_millis(now), limit))
                claimed = [_due_timer(row) for row in cursor.fetchall()]
            yield claimed
            with self.db.transaction() as cursor:
                self._delete(cursor, claimed)
            return
        with self.db.transaction() as cursor:
            cursor.execute(select + " FOR UPDATE SKIP LOCKED", (_millis(now), limit))
            claimed = [_due_timer(row) for row in cursor.fetchall()]
            yield claimed
            self._delete(cursor, claimed)

    def _delete(self, cursor: Cursor, timers: list[DueTimer]) -> None:
        cursor.executemany(
            f"DELETE FROM {self.timers} WHERE clock_id = ? AND timer = ?",
            [(str(clock_id), timer) for clock_id, timer, _ in timers],
        )

    def open_count(self) -> int:
        with self.db.transaction() as cursor:
            cursor.execute(f"SELECT COUNT(DISTINCT clock_id) FROM {self.timers}")
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    def next_due(self) -> datetime | None:
        with self.db.transaction() as cursor:
            cursor.execute(f"SELECT MIN(due_ms) FROM {self.timers}")
            row = cursor.fetchone()
        if not row or row[0] is None:
            return None
        return datetime.fromtimestamp(int(row[0]) / 1000, UTC)
