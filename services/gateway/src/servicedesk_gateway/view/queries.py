"""What the HTTP side reads from the view. Synchronous (the database drivers are): the
routes call these in a worker thread.

Lists are pages in a stable order: every sort ends with the ticket id, and the cursor
carries the last row's sort value and id, so a page never repeats or skips a ticket that
stays put while the caller pages (a ticket whose sort value changes meanwhile may move).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from servicedesk_contracts.codec import load_json
from servicedesk_gateway.view.schema import NO_DEADLINE, ViewTables, micros
from servicedesk_gateway.view.tickets import TicketView

SortKey = Literal["due", "received", "updated", "priority"]
SORT_COLUMNS: dict[str, str] = {
    "due": "next_due_at",
    "received": "received_at",
    "updated": "updated_at",
    "priority": "priority_rank",
}
MAX_SEARCH_TERMS = 16


class BadCursor(ValueError):
    """A cursor this view did not hand out (or for another sort order)."""


@dataclass(frozen=True)
class TicketFilter:
    """Every field narrows the list; None (or empty) does not filter."""

    status: Sequence[str] = ()
    open_only: bool = False
    """Every status but closed."""
    priority: Sequence[str] = ()
    agreement_id: uuid.UUID | None = None
    organisation: str | None = None
    assignee: str | None = None
    unassigned: bool | None = None
    group: str | None = None
    channel: str | None = None
    category: str | None = None
    breached: bool | None = None
    at_risk: bool | None = None
    waiting_on_customer: bool | None = None
    text: str | None = None
    due_only: bool = False
    """Only tickets with a clock running towards a deadline."""
    scope_organisation: str | None = None
    scope_agreement: uuid.UUID | None = None
    """What a customer may see: their organisation (and agreement), whatever else asked."""


@dataclass(frozen=True)
class Sort:
    key: SortKey = "received"
    descending: bool = True

    @classmethod
    def parse(cls, spec: str) -> Sort:
        """`due`, `-received`...: a leading minus sorts descending."""
        descending = spec.startswith("-")
        key = spec.removeprefix("-")
        if key not in SORT_COLUMNS:
            raise ValueError(f"sort by one of {', '.join(SORT_COLUMNS)}, not {key!r}")
        return cls(key, descending)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{'-' if self.descending else ''}{self.key}"


@dataclass
class Page:
    tickets: list[TicketView]
    next_cursor: str | None


@dataclass
class _Where:
    clauses: list[str] = field(default_factory=lambda: ["reference IS NOT NULL"])
    params: list[Any] = field(default_factory=list)

    def add(self, clause: str, *params: Any) -> None:
        self.clauses.append(clause)
        self.params.extend(params)

    def sql(self) -> str:
        return " AND ".join(self.clauses)


class ViewQueries:
    def __init__(self, tables: ViewTables) -> None:
        self.tables = tables
        self.database = tables.database

    # --- tickets ---------------------------------------------------------------------------

    def ticket(self, key: str | uuid.UUID) -> TicketView | None:
        """By id or by reference (`SD-000123`); None unless the ticket is opened."""
        column, value = _ticket_key(key)
        with self.database.reading() as cursor:
            cursor.execute(
                f"SELECT doc FROM {self.tables.tickets} "
                f"WHERE {column} = ? AND reference IS NOT NULL",
                (value,),
            )
            row = cursor.fetchone()
        return TicketView.from_doc(json.loads(row[0])) if row else None

    def agreement_of(self, ticket_id: uuid.UUID) -> uuid.UUID | None:
        """The ticket's agreement, known from any of its events (even before it opened)."""
        with self.database.reading() as cursor:
            cursor.execute(
                f"SELECT agreement_id FROM {self.tables.tickets} WHERE ticket_id = ?",
                (str(ticket_id),),
            )
            row = cursor.fetchone()
        return uuid.UUID(row[0]) if row and row[0] else None

    def tickets(
        self,
        where: TicketFilter,
        sort: Sort = Sort(),
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page:
        column = SORT_COLUMNS[sort.key]
        conditions = self._conditions(where)
        if cursor is not None:
            value, after_id = _decode_cursor(cursor, sort)
            conditions.add(
                f"({column}, ticket_id) {'<' if sort.descending else '>'} (?, ?)", value, after_id
            )
        order = "DESC" if sort.descending else "ASC"
        with self.database.reading() as db:
            db.execute(
                f"SELECT doc, {column}, ticket_id FROM {self.tables.tickets} "
                f"WHERE {conditions.sql()} ORDER BY {column} {order}, ticket_id {order} "
                "LIMIT ?",
                (*conditions.params, limit + 1),
            )
            rows = db.fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor(sort, rows[-1][1], rows[-1][2]) if more else None
        return Page([TicketView.from_doc(json.loads(row[0])) for row in rows], next_cursor)

    def _conditions(self, where: TicketFilter) -> _Where:
        found = _Where()
        self._states(found, where)
        for column, values in (("status", where.status), ("priority", where.priority)):
            if values:
                found.add(f"{column} IN ({', '.join('?' for _ in values)})", *values)
        for column, value in (
            ("agreement_id", str(where.agreement_id) if where.agreement_id else None),
            ("organisation", where.organisation),
            ("assignee", where.assignee),
            ("assigned_group", where.group),
            ("channel", where.channel),
            ("category", where.category),
            ("organisation", where.scope_organisation),
            ("agreement_id", str(where.scope_agreement) if where.scope_agreement else None),
        ):
            if value is not None:
                found.add(f"{column} = ?", value)
        for column, flag in (("breached", where.breached), ("at_risk", where.at_risk)):
            if flag is not None:
                found.add(f"{column} = ?", int(flag))
        if where.unassigned is not None:
            found.add("assignee IS NULL" if where.unassigned else "assignee IS NOT NULL")
        if where.waiting_on_customer is not None:
            found.add(
                "status = ?" if where.waiting_on_customer else "status <> ?", "awaiting_reply"
            )
        if where.text and where.text.strip():
            self._matching(found, where.text)
        return found

    def _states(self, found: _Where, where: TicketFilter) -> None:
        if where.open_only:
            found.add("status <> ?", "closed")
        if where.due_only:
            found.add("next_due_at <> ?", NO_DEADLINE)

    def _matching(self, found: _Where, text: str) -> None:
        """Tickets whose subject, description or any message has every word of `text`."""
        if self.tables.is_postgres:
            found.add(
                f"ticket_id IN (SELECT ticket_id FROM {self.tables.search} "
                "WHERE body @@ plainto_tsquery('simple', ?))",
                text,
            )
            return
        # Each word as an FTS5 string (quotes doubled): no word is read as FTS5 syntax.
        words = text.split()[:MAX_SEARCH_TERMS]
        query = " ".join('"' + word.replace('"', '""') + '"' for word in words)
        found.add(
            f"ticket_id IN (SELECT ticket_id FROM {self.tables.search} "
            f"WHERE {self.tables.search} MATCH ?)",
            query,
        )

    def workload(self) -> list[dict[str, Any]]:
        """Per agent: open tickets, how many at risk and breached."""
        with self.database.reading() as cursor:
            cursor.execute(
                f"SELECT assignee, COUNT(*), SUM(at_risk), SUM(breached) FROM "
                f"{self.tables.tickets} WHERE reference IS NOT NULL AND assignee IS NOT NULL "
                "AND status <> ? GROUP BY assignee ORDER BY assignee",
                ("closed",),
            )
            return [
                {"assignee": who, "open": int(n), "at_risk": int(risk), "breached": int(late)}
                for who, n, risk, late in cursor.fetchall()
            ]

    def count_by_status(self) -> dict[str, int]:
        with self.database.reading() as cursor:
            cursor.execute(
                f"SELECT status, COUNT(*) FROM {self.tables.tickets} "
                "WHERE reference IS NOT NULL GROUP BY status"
            )
            return {str(status): int(count) for status, count in cursor.fetchall()}

    def sla_risk(self) -> list[dict[str, Any]]:
        """Per agreement and priority, the open tickets: how many, at risk (a running clock
        past its first warning), breached, and the next deadline (micros, or None)."""
        with self.database.reading() as cursor:
            cursor.execute(
                f"SELECT t.agreement_id, t.priority, COUNT(*), SUM(t.at_risk), SUM(t.breached), "
                f"MIN(t.next_due_at), MIN(a.doc) FROM {self.tables.tickets} t "
                f"LEFT JOIN {self.tables.agreements} a ON a.agreement_id = t.agreement_id "
                "WHERE t.reference IS NOT NULL AND t.priority IS NOT NULL AND t.status <> ? "
                "GROUP BY t.agreement_id, t.priority",
                ("closed",),
            )
            rows = cursor.fetchall()
        return [
            {
                "agreement_id": str(agreement),
                "customer": str(json.loads(doc).get("customer", "")) if doc else "",
                "priority": str(priority),
                "open": int(count),
                "at_risk": int(risk or 0),
                "breached": int(late or 0),
                "next_due_micros": None if due is None or due >= NO_DEADLINE else int(due),
            }
            for agreement, priority, count, risk, late, due, doc in rows
        ]

    def tickets_received(
        self, agreement_id: uuid.UUID, start: datetime, end: datetime
    ) -> list[TicketView]:
        """The agreement's tickets received in [start, end)."""
        with self.database.reading() as cursor:
            cursor.execute(
                f"SELECT doc FROM {self.tables.tickets} WHERE agreement_id = ? "
                "AND reference IS NOT NULL AND received_at >= ? AND received_at < ? "
                "ORDER BY received_at, ticket_id",
                (str(agreement_id), micros(start), micros(end)),
            )
            return [TicketView.from_doc(json.loads(row[0])) for row in cursor.fetchall()]

    # --- timeline --------------------------------------------------------------------------

    def ticket_events(self, ticket: TicketView) -> list[tuple[str, dict[str, Any]]]:
        """(event type, message as JSON) of every event of the ticket, in time order, with
        its notifications (`Notification.Sent`/`Failed`) among them."""
        with self.database.reading() as cursor:
            cursor.execute(
                f"SELECT occurred_at, event_id, event_type, message FROM {self.tables.events} "
                "WHERE ticket_id = ?",
                (str(ticket.ticket_id),),
            )
            facts = [(at, eid, kind, json.loads(text)) for at, eid, kind, text in cursor.fetchall()]
            cursor.execute(
                f"SELECT occurred_at, event_id, outcome, subject_line FROM "
                f"{self.tables.notifications} WHERE reference = ?",
                (ticket.reference,),
            )
            facts += [
                (at, eid, f"Notification.{outcome}", _notification_message(eid, at, line))
                for at, eid, outcome, line in cursor.fetchall()
            ]
        # At one instant, causes first: the ticket's own change, then triage, then clocks.
        facts.sort(key=lambda fact: (fact[0], _cause_rank(fact[2]), fact[1]))
        return [(kind, body) for _, _, kind, body in facts]

    def notifications(self, reference: str) -> list[str]:
        with self.database.reading() as cursor:
            cursor.execute(
                f"SELECT outcome, subject_line FROM {self.tables.notifications} "
                "WHERE reference = ? ORDER BY occurred_at, event_id",
                (reference,),
            )
            return [f"{outcome}: {line}" for outcome, line in cursor.fetchall()]

    # --- commands --------------------------------------------------------------------------

    def command(self, command_id: uuid.UUID) -> dict[str, Any] | None:
        """How a command was decided, with the references of tickets it produced."""
        with self.database.reading() as cursor:
            cursor.execute(
                "SELECT outcome, command_type, service, reason, detail, produced, decided_at, "
                f"organisation FROM {self.tables.commands} WHERE command_id = ?",
                (str(command_id),),
            )
            row = cursor.fetchone()
            if row is None:
                return None
            outcome, command_type, service, reason, detail, produced, decided_at, whose = row
            produced_list = json.loads(produced)
        return {
            "command_id": str(command_id),
            "status": outcome,
            "command_type": command_type,
            "service": service,
            "reason": reason,
            "detail": detail,
            "produced": produced_list,
            "decided_at": datetime.fromtimestamp(decided_at / 1_000_000, UTC).isoformat(),
            "organisation": whose,
        }

    # --- agreements and statements ---------------------------------------------------------

    def agreement(self, agreement_id: uuid.UUID) -> dict[str, Any] | None:
        return self._doc(self.tables.agreements, "agreement_id = ?", (str(agreement_id),))

    def all_agreements(self) -> list[dict[str, Any]]:
        """Every agreement, by customer then id."""
        with self.database.reading() as cursor:
            cursor.execute(f"SELECT doc FROM {self.tables.agreements} ORDER BY agreement_id")
            docs = [json.loads(row[0]) for row in cursor.fetchall()]
        return sorted(docs, key=lambda doc: (str(doc.get("customer", "")), doc["agreement_id"]))

    def agreements_of(self, customer: str) -> list[dict[str, Any]]:
        """The agreements made for a customer (an organisation), oldest id first."""
        with self.database.reading() as cursor:
            cursor.execute(f"SELECT doc FROM {self.tables.agreements} ORDER BY agreement_id")
            docs = [json.loads(row[0]) for row in cursor.fetchall()]
        return [doc for doc in docs if doc.get("customer") == customer]

    def set_aside_mail(
        self, limit: int, before: tuple[int, str] | None = None, reason: str | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        """Mail set aside, newest first: (received_at micros, MailSetAside data), after
        the (micros, mail_id) cursor `before` when given."""
        where, params = ["1 = 1"], []
        if before is not None:
            where.append("(received_at < ? OR (received_at = ? AND mail_id < ?))")
            params += [before[0], before[0], before[1]]
        if reason is not None:
            where.append("reason = ?")
            params.append(reason)
        with self.database.reading() as cursor:
            cursor.execute(
                f"SELECT received_at, doc FROM {self.tables.mail} WHERE {' AND '.join(where)} "
                "ORDER BY received_at DESC, mail_id DESC LIMIT ?",
                (*params, limit),
            )
            return [(at, json.loads(doc)) for at, doc in cursor.fetchall()]

    def deliveries(self, outcome: str, limit: int) -> list[dict[str, Any]]:
        """Notifications whose latest outcome is `outcome`, newest first."""
        with self.database.reading() as cursor:
            cursor.execute(
                f"SELECT doc FROM {self.tables.deliveries} WHERE outcome = ? "
                "ORDER BY occurred_at DESC, notification_id DESC LIMIT ?",
                (outcome, limit),
            )
            return [json.loads(row[0]) for row in cursor.fetchall()]

    def delivery(self, notification_id: uuid.UUID) -> dict[str, Any] | None:
        return self._doc(self.tables.deliveries, "notification_id = ?", (str(notification_id),))

    def contacts(self, organisation: str | None) -> list[dict[str, Any]]:
        """Registered contacts, of one organisation when given, by address."""
        where, params = ("organisation = ?", (organisation,)) if organisation else ("1 = 1", ())
        with self.database.reading() as cursor:
            cursor.execute(
                f"SELECT doc FROM {self.tables.contacts} WHERE {where} ORDER BY email", params
            )
            return [json.loads(row[0]) for row in cursor.fetchall()]

    def mail_set_aside(self, mail_id: uuid.UUID) -> dict[str, Any] | None:
        return self._doc(self.tables.mail, "mail_id = ?", (str(mail_id),))

    def statement(self, agreement_id: uuid.UUID, month: str) -> dict[str, Any] | None:
        return self._doc(
            self.tables.statements, "agreement_id = ? AND month = ?", (str(agreement_id), month)
        )

    def _doc(self, table: str, where: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        with self.database.reading() as cursor:
            cursor.execute(f"SELECT doc FROM {table} WHERE {where}", params)
            row = cursor.fetchone()
        found: dict[str, Any] | None = json.loads(row[0]) if row else None
        return found


def _cause_rank(event_type: str) -> int:
    if event_type == "TicketOpened":
        return 0
    if event_type.startswith("Sla"):
        return 3
    if event_type.startswith("Notification"):
        return 4
    return 2 if event_type == "TicketTriaged" else 1


def _notification_message(event_id: str, at: int, subject_line: str) -> dict[str, Any]:
    """A receipt as the timeline reads messages (the view keeps only what it shows)."""
    when = datetime.fromtimestamp(at / 1_000_000, UTC).isoformat()
    return {"event_id": event_id, "occurred_at": when, "data": {"subject_line": subject_line}}


def _ticket_key(key: str | uuid.UUID) -> tuple[str, str]:
    if isinstance(key, uuid.UUID):
        return "ticket_id", str(key)
    try:
        return "ticket_id", str(uuid.UUID(key))
    except ValueError:
        return "reference", key.upper()


def _encode_cursor(sort: Sort, value: Any, ticket_id: str) -> str:
    raw = json.dumps([str(sort), value, ticket_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: Sort) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        sort_spec, value, ticket_id = load_json(raw)
        uuid.UUID(ticket_id)
    except (binascii.Error, ValueError, TypeError) as bad:
        raise BadCursor("not a cursor this API handed out") from bad
    if sort_spec != str(sort):
        raise BadCursor(f"this cursor pages the order {sort_spec!r}, not {str(sort)!r}")
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadCursor("not a cursor this API handed out")
    return value, ticket_id
