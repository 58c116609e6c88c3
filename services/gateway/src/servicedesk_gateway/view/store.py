"""The view as one object: its tables, its exactly-once bookkeeping, its handlers and its
queries, in the gateway's database."""

from __future__ import annotations

from eventsourcing.persistence import Tracking

from servicedesk_contracts import Message
from servicedesk_gateway.view.projector import ViewProjector
from servicedesk_gateway.view.queries import ViewQueries
from servicedesk_gateway.view.schema import PREFIX, ViewTables
from servicedesk_runtime.consumer import Handler, read_ahead
from servicedesk_runtime.database import Database
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.projection import ProjectionStore

log = get_logger(__name__)


SCHEMA_VERSION = "2026-11-28.4"
"""Changed with the view's tables: a view of another version is dropped and rebuilt from
the topics at start (it is a projection: nothing of it is lost)."""


class GatewayView:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.tables = ViewTables(database)
        self.projector = ViewProjector(self.tables)
        self.store = ProjectionStore(database, PREFIX, read_ahead=self.projector.read_ahead)
        found = self.tables.version()
        if found not in (None, SCHEMA_VERSION):
            log.warning("view_schema_changed_rebuilding", found=found, now=SCHEMA_VERSION)
            self.drop()
        self.tables.create()
        self.tables.set_version(SCHEMA_VERSION)
        self.queries = ViewQueries(self.tables)
        self.handlers: dict[str, Handler] = self.projector.handlers()

    def apply(self, *messages: Message, tracking: Tracking | None = None) -> int:
        """Applies messages in one transaction (with `tracking`, the position they were
        read up to), outside the live consumer (tests, the rebuild), reading ahead what
        the handlers name as the consumer does; a message applied before is skipped.
        Returns how many were applied."""
        uow = self.store.unit_of_work()
        applied = 0
        try:
            routed = [(m, self.handlers.get(m.event_type)) for m in messages]
            handled = [(m, h) for m, h in routed if h is not None]
            read_ahead(uow, handled)
            for message, handler in handled:
                if uow.already_applied(message.event_id):
                    continue
                handler(message, uow)
                uow.mark_applied(message.event_id)
                applied += 1
        except BaseException:
            uow.discard()
            raise
        uow.commit(tracking)
        return applied

    def drop(self) -> None:
        """Empties the view and forgets every position: it is rebuilt from the topics."""
        with self.database.transaction() as cursor:
            self.tables.drop(cursor)
            self.store.forget(cursor)
        self.tables.create()
