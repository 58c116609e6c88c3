"""The view's handlers: each event changes the tables through the batch's open transaction
(`ProjectionUnitOfWork`), so a batch's changes and its Kafka position commit together.

A batch's tickets are read together before its events are applied (locked `FOR UPDATE`
on PostgreSQL, where several gateway replicas may write), and each changed ticket is
written once, before commit, as are the batch's timeline rows: a burst's cost was two
round trips per ticket and one per event.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from servicedesk_contracts import Message
from servicedesk_contracts import messages as m
from servicedesk_gateway.view.schema import NO_DEADLINE, ViewTables, micros
from servicedesk_gateway.view.tickets import TICKET_EVENTS, TicketView
from servicedesk_runtime.consumer import Handler, handles, handles_any
from servicedesk_runtime.projection import ProjectionUnitOfWork
from servicedesk_runtime.store import in_chunks

_REFERENCE = re.compile(r"\[(SD-\d+)\]")
_SEARCHED = {"TicketOpened", "AgentReplied", "CustomerReplied"}


@dataclass
class _BatchTickets:
    """A batch's tickets as read (locked on PostgreSQL), which of them its events changed,
    and its timeline rows."""

    read: dict[uuid.UUID, TicketView] = field(default_factory=dict)
    changed: set[uuid.UUID] = field(default_factory=set)
    timeline: list[tuple[Any, ...]] = field(default_factory=list)


class ViewProjector:
    def __init__(self, tables: ViewTables) -> None:
        self.tables = tables

    def handlers(self) -> dict[str, Handler]:
        return {
            **dict.fromkeys(TICKET_EVENTS, handles_any(self._ticket_event, reads=_its_ticket)),
            **dict(
                [
                    handles(m.AgreementRegistered, self._agreement),
                    handles(m.StatementIssued, self._statement),
                    handles(m.NotificationSent, self._notification_sent),
                    handles(m.NotificationFailed, self._notification_failed),
                    handles(m.CommandDecided, self._command_decided),
                    handles(m.MailSetAside, self._mail_set_aside),
                    handles(m.MailFiled, self._mail_filed),
                    handles(m.ContactRegistered, self._contact),
                ]
            ),
        }

    # --- tickets ---------------------------------------------------------------------------

    def _ticket_event(self, message: Message, uow: ProjectionUnitOfWork) -> None:
        batch = self._batch(uow)
        ticket = batch.read.get(message.subject_id)
        if ticket is None:
            ticket = self._read_ticket(uow, message.subject_id)
        ticket.apply(message)
        batch.changed.add(message.subject_id)
        batch.timeline.append(
            (
                str(message.event_id),
                str(message.subject_id),
                micros(message.occurred_at),
                message.event_type,
                message.to_json().decode(),
            )
        )
        if message.event_type in _SEARCHED:
            self._index_text(uow, message, _searchable_text(message))

    def read_ahead(self, uow: ProjectionUnitOfWork, ticket_ids: Iterable[uuid.UUID]) -> None:
        """Reads the batch's tickets, made first if missing and locked until commit on
        PostgreSQL (so two replicas changing one ticket take turns instead of one
        overwriting the other), in two statements per 500, in id order (so replicas
        locking overlapping batches never deadlock)."""
        read = self._batch(uow).read
        wanted = sorted({str(i) for i in ticket_ids if i not in read})
        table = self.tables.tickets
        lock = " FOR UPDATE" if self.tables.is_postgres else ""
        for chunk in in_chunks(wanted):
            uow.cursor.execute(
                f"INSERT INTO {table} (ticket_id) VALUES {','.join(['(?)'] * len(chunk))} "
                "ON CONFLICT (ticket_id) DO NOTHING",
                chunk,
            )
            uow.cursor.execute(
                f"SELECT ticket_id, doc FROM {table} "
                f"WHERE ticket_id IN ({','.join('?' * len(chunk))}) ORDER BY ticket_id{lock}",
                chunk,
            )
            for ticket_id, doc in uow.cursor.fetchall():
                read[uuid.UUID(ticket_id)] = _ticket_view(uuid.UUID(ticket_id), doc)

    def _read_ticket(self, uow: ProjectionUnitOfWork, ticket_id: uuid.UUID) -> TicketView:
        """A ticket its handler did not name ahead: read on its own."""
        self.read_ahead(uow, [ticket_id])
        return self._batch(uow).read[ticket_id]

    def _batch(self, uow: ProjectionUnitOfWork) -> _BatchTickets:
        """The batch's tickets and timeline rows, written once, before commit."""
        batch = uow.state.get("tickets")
        if not isinstance(batch, _BatchTickets):
            batch = _BatchTickets()
            uow.state["tickets"] = batch
            uow.before_commit(lambda: self._write(uow, batch))
        return batch

    def _write(self, uow: ProjectionUnitOfWork, batch: _BatchTickets) -> None:
        """Only tickets an event changed: a batch of duplicates (a relay republishing its
        log after a broker restart) reads its tickets ahead and writes nothing back."""
        if batch.changed:
            self._write_tickets(uow, [batch.read[i] for i in batch.changed])
        if batch.timeline:
            uow.cursor.executemany(
                f"INSERT INTO {self.tables.events} "
                "(event_id, ticket_id, occurred_at, event_type, message) VALUES (?, ?, ?, ?, ?)",
                batch.timeline,
            )

    def _write_tickets(self, uow: ProjectionUnitOfWork, changed: list[TicketView]) -> None:
        uow.cursor.executemany(
            f"UPDATE {self.tables.tickets} SET reference = ?, status = ?, priority = ?, "
            "priority_rank = ?, agreement_id = ?, organisation = ?, channel = ?, "
            "category = ?, assignee = ?, assigned_group = ?, received_at = ?, "
            "updated_at = ?, next_due_at = ?, breached = ?, at_risk = ?, doc = ? "
            "WHERE ticket_id = ?",
            [_row(ticket) for ticket in changed],
        )

    def _index_text(self, uow: ProjectionUnitOfWork, message: Message, text: str) -> None:
        if self.tables.is_postgres:
            uow.cursor.execute(
                f"INSERT INTO {self.tables.search} (event_id, ticket_id, body) "
                "VALUES (?, ?, to_tsvector('simple', ?))",
                (str(message.event_id), str(message.subject_id), text),
            )
        else:
            uow.cursor.execute(
                f"INSERT INTO {self.tables.search} (ticket_id, body) VALUES (?, ?)",
                (str(message.subject_id), text),
            )

    # --- agreements, statements, notifications --------------------------------------------

    def _agreement(self, message: m.AgreementRegistered, uow: ProjectionUnitOfWork) -> None:
        doc = {"agreement_id": str(message.subject_id), **message.data.model_dump(mode="json")}
        uow.cursor.execute(
            f"INSERT INTO {self.tables.agreements} (agreement_id, doc) VALUES (?, ?) "
            "ON CONFLICT (agreement_id) DO UPDATE SET doc = excluded.doc",
            (str(message.subject_id), json.dumps(doc)),
        )

    def _statement(self, message: m.StatementIssued, uow: ProjectionUnitOfWork) -> None:
        data = message.data
        uow.cursor.execute(
            f"INSERT INTO {self.tables.statements} (agreement_id, month, doc) "
            "VALUES (?, ?, ?) ON CONFLICT (agreement_id, month) DO UPDATE SET doc = excluded.doc",
            (str(data.agreement_id), data.month, json.dumps(data.model_dump(mode="json"))),
        )

    def _notification_sent(self, message: m.NotificationSent, uow: ProjectionUnitOfWork) -> None:
        self._notification(message, message.data.subject_line, "sent", uow)
        self._delivery(message, "sent", uow)

    def _notification_failed(
        self, message: m.NotificationFailed, uow: ProjectionUnitOfWork
    ) -> None:
        self._notification(message, message.data.subject_line, "failed", uow)
        self._delivery(message, "failed", uow)

    def _delivery(
        self,
        message: m.NotificationSent | m.NotificationFailed,
        outcome: str,
        uow: ProjectionUnitOfWork,
    ) -> None:
        """A delivery's latest outcome (a resent one fails, then is sent)."""
        doc = {**message.data.model_dump(mode="json"), "outcome": outcome}
        doc["at"] = message.occurred_at.isoformat()
        uow.cursor.execute(
            f"INSERT INTO {self.tables.deliveries} (notification_id, outcome, occurred_at, doc) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (notification_id) DO UPDATE SET "
            "outcome = excluded.outcome, occurred_at = excluded.occurred_at, doc = excluded.doc "
            f"WHERE excluded.occurred_at >= {self.tables.deliveries}.occurred_at",
            (
                str(message.data.notification_id),
                outcome,
                micros(message.occurred_at),
                json.dumps(doc),
            ),
        )

    def _command_decided(self, message: m.CommandDecided, uow: ProjectionUnitOfWork) -> None:
        """A command is decided once; should two outcomes ever arrive, the first stays."""
        uow.cursor.execute(
            f"INSERT INTO {self.tables.commands} (command_id, outcome, command_type, service, "
            "reason, detail, produced, decided_at, organisation) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (command_id) DO NOTHING",
            _decided_row(message),
        )

    def _contact(self, message: m.ContactRegistered, uow: ProjectionUnitOfWork) -> None:
        data = message.data
        uow.cursor.execute(
            f"INSERT INTO {self.tables.contacts} (email, organisation, doc) VALUES (?, ?, ?) "
            "ON CONFLICT (email) DO NOTHING",
            (data.email, data.organisation, json.dumps(data.model_dump(mode="json"))),
        )

    def _mail_filed(self, message: m.MailFiled, uow: ProjectionUnitOfWork) -> None:
        """A set-aside mail an agent filed: its row names the ticket (other mail has none)."""
        table = self.tables.mail
        uow.cursor.execute(f"SELECT doc FROM {table} WHERE mail_id = ?", (str(message.subject_id),))
        row = uow.cursor.fetchone()
        if row is None:
            return
        doc = {**json.loads(row[0]), "filed_reference": message.data.reference}
        uow.cursor.execute(
            f"UPDATE {table} SET doc = ? WHERE mail_id = ?",
            (json.dumps(doc), str(message.subject_id)),
        )

    def _mail_set_aside(self, message: m.MailSetAside, uow: ProjectionUnitOfWork) -> None:
        data = message.data
        uow.cursor.execute(
            f"INSERT INTO {self.tables.mail} (mail_id, received_at, reason, agreement_id, doc) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (mail_id) DO NOTHING",
            (
                str(data.mail_id),
                micros(data.received_at),
                data.reason,
                str(data.agreement_id) if data.agreement_id else None,
                json.dumps(data.model_dump(mode="json")),
            ),
        )

    def _notification(
        self, message: Message, subject_line: str, outcome: str, uow: ProjectionUnitOfWork
    ) -> None:
        """Receipts name their ticket only in the subject (`[SD-000123]`)."""
        found = _REFERENCE.search(subject_line)
        if found is None:
            return
        uow.cursor.execute(
            f"INSERT INTO {self.tables.notifications} "
            "(event_id, reference, occurred_at, outcome, subject_line) VALUES (?, ?, ?, ?, ?)",
            (
                str(message.event_id),
                found.group(1),
                micros(message.occurred_at),
                outcome,
                subject_line,
            ),
        )


def _decided_row(message: m.CommandDecided) -> tuple[Any, ...]:
    data = message.data
    produced = [p.model_dump(mode="json") for p in data.produced]
    return (
        str(data.command_id),
        data.outcome,
        data.command_type,
        data.service,
        data.reason,
        data.detail,
        json.dumps(produced),
        micros(message.occurred_at),
        message.actor.organisation if message.actor else None,
    )


def _its_ticket(message: Message) -> tuple[uuid.UUID]:
    """What a ticket event's handler reads: its ticket (`subject_id`)."""
    return (message.subject_id,)


def _ticket_view(ticket_id: uuid.UUID, doc: str | None) -> TicketView:
    """A ticket as its row's document has it (None: a row just made)."""
    return TicketView(ticket_id) if doc is None else TicketView.from_doc(json.loads(doc))


def _row(ticket: TicketView) -> tuple[Any, ...]:
    return (
        ticket.reference or None,
        ticket.status,
        ticket.priority,
        ticket.priority_rank(),
        str(ticket.agreement_id) if ticket.agreement_id else None,
        ticket.organisation,
        ticket.channel,
        ticket.category,
        ticket.assignee,
        ticket.group,
        micros(ticket.received_at),
        micros(ticket.updated_at),
        _or_no_deadline(micros(ticket.next_due_at())),
        int(ticket.breached()),
        int(ticket.at_risk()),
        json.dumps(ticket.to_doc()),
        str(ticket.ticket_id),
    )


def _or_no_deadline(due: int | None) -> int:
    return NO_DEADLINE if due is None else due


def _searchable_text(message: Message) -> str:
    if isinstance(message, m.TicketOpened):
        return f"{message.data.reference} {message.data.subject} {message.data.body}"
    if isinstance(message, m.AgentReplied | m.CustomerReplied):
        return message.data.body
    return ""
