"""eventsourcing's PostgreSQL process recorder, with a faster way to insert events.

The library inserts a batch as one array of a composite type, which psycopg writes as
text, escaping every event's bytes with regular expressions: about a fifth of a service's
CPU per ticket in a burst. This recorder sends the same rows as four arrays, one per
column, in PostgreSQL's binary format. Its NOTIFY says which recorder sent it, so a relay
is woken only by other processes' commits (its own process wakes it directly). It runs the
library's transaction with the library's statements (the table lock that keeps
notification ids in commit order, tracking, the ids returned), each composed once and sent
without psycopg's pipeline mode: both cost more in Python than they saved.

Both engines' recorders also record several Kafka positions in one transaction (see
`Positions`): a fetch that spans partitions is applied as one batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent, Tracking
from eventsourcing.postgres import PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteProcessRecorder
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.abc import AdaptContext
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier, Literal


class ComposedOnce(Composed):
    """A composed statement that quotes its identifiers once. psycopg composes an SQL
    object anew at every execute, quoting each identifier through libpq: the library's
    statements of a commit (the table lock, the tracking insert) and ours cost 5-7 % of a
    service's CPU that way."""

    def __init__(self, statement: Composed) -> None:
        super().__init__(list(statement))
        self._bytes: bytes | None = None

    def as_bytes(self, context: AdaptContext | None = None) -> bytes:
        if self._bytes is None:
            self._bytes = super().as_bytes(context)
        return self._bytes


def compose_once(owner: object) -> None:
    """Makes every statement `owner` composed when it was made (one, or a list) compose
    once."""
    for name, value in list(vars(owner).items()):
        if isinstance(value, Composed):
            setattr(owner, name, ComposedOnce(value))
        elif isinstance(value, list) and value and all(isinstance(v, Composed) for v in value):
            setattr(owner, name, [ComposedOnce(v) for v in value])


@dataclass(frozen=True)
class Positions(Tracking):
    """Several tracking positions (one per partition of a fetch) recorded in the one
    transaction of a batch: this tracking and `more`. Each is checked as a lone tracking
    is: one that is not past its recorded position fails the whole transaction."""

    more: tuple[Tracking, ...] = ()


def positions(trackings: Sequence[Tracking]) -> Tracking:
    """One tracking for `trackings` (at least one)."""
    first, *more = trackings
    if not more:
        return first
    return Positions(first.application_name, first.notification_id, tuple(more))


def each_position(tracking: Tracking) -> list[Tracking]:
    if isinstance(tracking, Positions):
        return [Tracking(tracking.application_name, tracking.notification_id), *tracking.more]
    return [tracking]


class _RecordsPositions:
    """Records every position of a `Positions` with the library's own statement."""

    def _insert_tracking(self, cursor: Any, tracking: Tracking) -> None:
        for position in each_position(tracking):
            super()._insert_tracking(cursor, position)  # type: ignore[misc]


class PositionsSQLiteProcessRecorder(_RecordsPositions, SQLiteProcessRecorder):
    pass


class ColumnarPostgresProcessRecorder(_RecordsPositions, PostgresProcessRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.origin = uuid.uuid4().hex
        """The payload of this recorder's NOTIFYs."""
        self.insert_events_statement = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
        )
        self.notify_statement = SQL("NOTIFY {0}, {1}").format(
            Identifier(self.channel_name), Literal(self.origin)
        )
        compose_once(self)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """The library's transaction (tracking rows, then the lock, NOTIFY and the
        events, their notification ids back), without psycopg's pipeline mode. A batch is
        a handful of statements: pipelining them saved round trips of tens of microseconds
        on a local socket, and cost more than that in Python (`bench/commit.py`: 0.09-0.14
        ms of CPU a commit, a fifth, and some wall time too). Errors are the library's:
        an integrity error raises at its statement and rolls the whole back."""
        if self.datastore.enable_db_functions:
            ids: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
            return ids
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)
            if not stored_events:
                return None
            self._insert_stored_events(curs, stored_events, **kwargs)
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)

    def _notify_channel(self, curs: Cursor[DictRow]) -> None:
        curs.execute(self.notify_statement)

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **_: Any
    ) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            self.insert_events_statement,
            (
                [event.originator_id for event in stored_events],
                [event.originator_version for event in stored_events],
                [event.topic for event in stored_events],
                [event.state for event in stored_events],
            ),
        )
