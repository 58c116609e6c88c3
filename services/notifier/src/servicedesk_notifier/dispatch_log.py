"""The dispatcher's own rows in the notifier's database: how far it followed the store's
notification log, and which deliveries it started and has not recorded yet."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from servicedesk_runtime.database import Database
from servicedesk_runtime.relay import LogPositions


class DispatchLog:
    NAME = "deliveries"

    def __init__(self, database: Database) -> None:
        self._db = database
        self._positions = LogPositions(database, "notifier_dispatch_position")
        self._started = database.table("notifier_dispatch_started")
        with database.transaction() as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self._started} (delivery_id TEXT PRIMARY KEY)"
            )

    def position(self) -> int:
        return self._positions.get(self.NAME)

    def advance(self, position: int) -> None:
        self._positions.set(self.NAME, position)

    def start(self, delivery_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Marks deliveries as started, in one transaction; returns those that were
        started before and never recorded, so their mail may have gone out already."""
        keys = [str(delivery_id) for delivery_id in delivery_ids]
        if not keys:
            return set()
        with self._db.transaction() as cursor:
            cursor.execute(
                f"SELECT delivery_id FROM {self._started} "
                f"WHERE delivery_id IN ({', '.join('?' * len(keys))})",
                keys,
            )
            marked = {uuid.UUID(row[0]) for row in cursor.fetchall()}
            cursor.executemany(
                f"INSERT INTO {self._started} (delivery_id) VALUES (?) "
                "ON CONFLICT (delivery_id) DO NOTHING",
                [(key,) for key in keys],
            )
        return marked

    def finish(self, delivery_ids: Sequence[uuid.UUID]) -> None:
        """Unmarks deliveries whose outcome is recorded, or whose mail did not go out."""
        if not delivery_ids:
            return
        with self._db.transaction() as cursor:
            cursor.executemany(
                f"DELETE FROM {self._started} WHERE delivery_id = ?",
                [(str(delivery_id),) for delivery_id in delivery_ids],
            )
