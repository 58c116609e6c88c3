"""The view's tables. Times that queries compare or sort on are stored as integer
microseconds since the epoch (UTC): ISO strings only sort right when they share a format.

Full-text search: SQLite's FTS5 in the embedded run, PostgreSQL's tsvector with a GIN index
otherwise; both with no language stemming ("simple"), as desks write in several languages.
"""

from __future__ import annotations

from datetime import datetime

from servicedesk_runtime.database import Cursor, Database

PREFIX = "view"
NO_DEADLINE = (1 << 63) - 1
"""Stored as the next deadline of a ticket with none: sorts after every real one."""
TABLES = (
    "tickets",
    "events",
    "notifications",
    "agreements",
    "statements",
    "search",
    "commands",
    "mail",
    "contacts",
    "deliveries",
)


def micros(iso_or_time: str | datetime | None) -> int | None:
    if iso_or_time is None or iso_or_time == "":
        return None
    when = datetime.fromisoformat(iso_or_time) if isinstance(iso_or_time, str) else iso_or_time
    return int(when.timestamp() * 1_000_000) if when.utcoffset() is not None else None


class ViewTables:
    """Names the tables (schema-qualified on PostgreSQL) and creates or drops them."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.is_postgres = database.is_postgres
        self.tickets = database.table("view_tickets")
        self.events = database.table("view_events")
        self.notifications = database.table("view_notifications")
        self.agreements = database.table("view_agreements")
        self.statements = database.table("view_statements")
        self.search = database.table("view_search")
        self.commands = database.table("view_commands")
        self.contacts = database.table("view_contacts")
        self.deliveries = database.table("view_deliveries")
        """Each notification's latest outcome (sent or failed), for the failed list."""
        self.mail = database.table("view_mail")
        """Mail set aside (machines, unmatched senders, refusals): kept and visible."""
        self.meta = database.table("view_meta")

    def create(self) -> None:
        with self.database.transaction() as cursor:
            for statement in self._ddl():
                cursor.execute(statement)

    def version(self) -> str | None:
        """The schema version the view was built with; None for a new (or pre-version) one."""
        with self.database.transaction() as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self.meta} (key TEXT PRIMARY KEY, value TEXT)"
            )
            cursor.execute(f"SELECT value FROM {self.meta} WHERE key = 'schema_version'")
            row = cursor.fetchone()
        return None if row is None else str(row[0])

    def set_version(self, version: str) -> None:
        with self.database.transaction() as cursor:
            cursor.execute(
                f"INSERT INTO {self.meta} (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (version,),
            )

    def drop(self, cursor: Cursor) -> None:
        for table in (
            self.tickets,
            self.events,
            self.notifications,
            self.agreements,
            self.statements,
            self.search,
            self.commands,
            self.mail,
            self.contacts,
            self.deliveries,
        ):
            cursor.execute(f"DROP TABLE IF EXISTS {table}")

    def _ddl(self) -> list[str]:
        index = self._index
        return [
            f"""CREATE TABLE IF NOT EXISTS {self.tickets} (
                ticket_id TEXT PRIMARY KEY,
                reference TEXT,
                status TEXT,
                priority TEXT,
                priority_rank INTEGER,
                agreement_id TEXT,
                organisation TEXT,
                channel TEXT,
                category TEXT,
                assignee TEXT,
                assigned_group TEXT,
                received_at BIGINT,
                updated_at BIGINT,
                next_due_at BIGINT,
                breached INTEGER NOT NULL DEFAULT 0,
                at_risk INTEGER NOT NULL DEFAULT 0,
                doc TEXT)""",
            f"CREATE UNIQUE INDEX IF NOT EXISTS {index('tickets_reference')} "
            f"ON {self.tickets} (reference)",
            *(
                f"CREATE INDEX IF NOT EXISTS {index('tickets_' + column)} "
                f"ON {self.tickets} ({column}, ticket_id)"
                for column in (
                    "next_due_at",
                    "received_at",
                    "updated_at",
                    "priority_rank",
                    "status",
                    "agreement_id",
                    "organisation",
                    "assignee",
                    "assigned_group",
                )
            ),
            f"""CREATE TABLE IF NOT EXISTS {self.events} (
                event_id TEXT PRIMARY KEY,
                ticket_id TEXT NOT NULL,
                occurred_at BIGINT NOT NULL,
                event_type TEXT NOT NULL,
                message TEXT NOT NULL)""",
            f"CREATE INDEX IF NOT EXISTS {index('events_ticket')} "
            f"ON {self.events} (ticket_id, occurred_at)",
            f"""CREATE TABLE IF NOT EXISTS {self.notifications} (
                event_id TEXT PRIMARY KEY,
                reference TEXT NOT NULL,
                occurred_at BIGINT NOT NULL,
                outcome TEXT NOT NULL,
                subject_line TEXT NOT NULL)""",
            f"CREATE INDEX IF NOT EXISTS {index('notifications_reference')} "
            f"ON {self.notifications} (reference, occurred_at)",
            f"""CREATE TABLE IF NOT EXISTS {self.mail} (
                mail_id TEXT PRIMARY KEY,
                received_at BIGINT NOT NULL,
                reason TEXT NOT NULL,
                agreement_id TEXT,
                doc TEXT NOT NULL)""",
            f"CREATE INDEX IF NOT EXISTS {index('mail_received')} "
            f"ON {self.mail} (received_at, mail_id)",
            f"CREATE TABLE IF NOT EXISTS {self.contacts} (email TEXT PRIMARY KEY, "
            "organisation TEXT NOT NULL, doc TEXT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {index('contacts_organisation')} "
            f"ON {self.contacts} (organisation, email)",
            f"""CREATE TABLE IF NOT EXISTS {self.deliveries} (
                notification_id TEXT PRIMARY KEY,
                outcome TEXT NOT NULL,
                occurred_at BIGINT NOT NULL,
                doc TEXT NOT NULL)""",
            f"CREATE INDEX IF NOT EXISTS {index('deliveries_outcome')} "
            f"ON {self.deliveries} (outcome, occurred_at)",
            f"CREATE TABLE IF NOT EXISTS {self.agreements} "
            "(agreement_id TEXT PRIMARY KEY, doc TEXT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {self.statements} (agreement_id TEXT NOT NULL, "
            "month TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (agreement_id, month))",
            f"""CREATE TABLE IF NOT EXISTS {self.commands} (
                command_id TEXT PRIMARY KEY,
                outcome TEXT NOT NULL,
                command_type TEXT NOT NULL,
                service TEXT NOT NULL,
                reason TEXT,
                detail TEXT,
                produced TEXT NOT NULL,
                decided_at BIGINT NOT NULL,
                organisation TEXT)""",
            *self._search_ddl(),
        ]

    def _search_ddl(self) -> list[str]:
        if not self.is_postgres:
            return [
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {self.search} "
                "USING fts5(ticket_id UNINDEXED, body)"
            ]
        return [
            f"CREATE TABLE IF NOT EXISTS {self.search} "
            "(event_id TEXT PRIMARY KEY, ticket_id TEXT NOT NULL, body TSVECTOR NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS view_search_body ON {self.search} USING GIN (body)",
            f"CREATE INDEX IF NOT EXISTS view_search_ticket ON {self.search} (ticket_id)",
        ]

    def _index(self, name: str) -> str:
        """Index names: PostgreSQL puts an index in its table's schema (name unqualified)."""
        return f"view_{name}"
