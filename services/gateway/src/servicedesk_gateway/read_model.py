"""The gateway's query view: a projection of the topics, kept in memory.

It holds nothing the topics do not: at every start it is rebuilt by reading them from the
beginning. Applying a message twice changes nothing (every update is keyed by its subject).
Topics are ordered only within themselves, so a ticket's triage or SLA events may arrive
before its `TicketOpened`: they fill a view that the opening completes later.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from servicedesk_contracts import Message
from servicedesk_contracts import messages as m


@dataclass
class TicketView:
    ticket_id: uuid.UUID
    reference: str = ""
    agreement_id: uuid.UUID | None = None
    status: str = "open"
    subject: str = ""
    reporter_email: str = ""
    organisation: str = ""
    channel: str = ""
    category: str = ""
    received_at: str = ""
    priority: str | None = None
    triage_reason: str | None = None
    sla: dict[str, dict[str, Any]] = field(default_factory=dict)
    agent_replies: int = 0
    customer_replies: int = 0
    minutes_logged: int = 0

    @property
    def opened(self) -> bool:
        return bool(self.reference)

    def as_json(self, notifications: list[str]) -> dict[str, Any]:
        return {
            "ticket_id": str(self.ticket_id),
            "reference": self.reference,
            "agreement_id": str(self.agreement_id) if self.agreement_id else None,
            "status": self.status,
            "subject": self.subject,
            "reporter_email": self.reporter_email,
            "organisation": self.organisation,
            "channel": self.channel,
            "category": self.category,
            "received_at": self.received_at,
            "priority": self.priority,
            "triage_reason": self.triage_reason,
            "sla": self.sla,
            "agent_replies": self.agent_replies,
            "customer_replies": self.customer_replies,
            "minutes_logged": self.minutes_logged,
            "notifications": notifications,
        }


class ReadModel:
    def __init__(self) -> None:
        self.tickets: dict[uuid.UUID, TicketView] = {}
        self.agreements: dict[uuid.UUID, dict[str, Any]] = {}
        self.statements: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}
        self.notifications: dict[str, list[str]] = {}
        """Receipts by ticket reference (they name their ticket only in the subject)."""
        self.applied = 0

    def count_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for ticket in self.opened_tickets():
            counts[ticket.status] = counts.get(ticket.status, 0) + 1
        return counts

    def opened_tickets(self) -> list[TicketView]:
        return [t for t in self.tickets.values() if t.opened]

    def ticket_json(self, ticket_id: uuid.UUID) -> dict[str, Any] | None:
        ticket = self.tickets.get(ticket_id)
        if ticket is None or not ticket.opened:
            return None
        return ticket.as_json(self.notifications.get(ticket.reference, []))

    def _ticket(self, ticket_id: uuid.UUID) -> TicketView:
        return self.tickets.setdefault(ticket_id, TicketView(ticket_id))

    def apply(self, message: Message) -> None:
        handler = getattr(self, f"_on_{message.event_type}", None)
        if handler is not None:
            handler(message)
            self.applied += 1

    def _on_TicketOpened(self, message: m.TicketOpened) -> None:  # noqa: N802
        data = message.data
        ticket = self._ticket(message.subject_id)
        ticket.reference = data.reference
        ticket.agreement_id = data.agreement_id
        ticket.subject = data.subject
        ticket.reporter_email = data.reporter_email
        ticket.organisation = data.organisation
        ticket.channel = data.channel
        ticket.category = data.category
        ticket.received_at = data.received_at.isoformat()

    def _on_TicketStatusChanged(self, message: m.TicketStatusChanged) -> None:  # noqa: N802
        self._ticket(message.subject_id).status = message.data.to_status

    def _on_AgentReplied(self, message: m.AgentReplied) -> None:  # noqa: N802
        self._ticket(message.subject_id).agent_replies += 1

    def _on_CustomerReplied(self, message: m.CustomerReplied) -> None:  # noqa: N802
        self._ticket(message.subject_id).customer_replies += 1

    def _on_TimeLogged(self, message: m.TimeLogged) -> None:  # noqa: N802
        self._ticket(message.subject_id).minutes_logged += message.data.duration_minutes

    def _on_TicketTriaged(self, message: m.TicketTriaged) -> None:  # noqa: N802
        ticket = self._ticket(message.subject_id)
        ticket.priority = message.data.priority
        ticket.triage_reason = message.data.reason

    def _on_SlaClockStarted(self, message: m.SlaClockStarted) -> None:  # noqa: N802
        data = message.data
        clock = self._ticket(message.subject_id).sla.setdefault(data.kind, {"state": "running"})
        clock.update(
            priority=data.priority,
            target_minutes=data.target_minutes,
            started_at=data.started_at.isoformat(),
            due_at=data.due_at.isoformat(),
        )

    def _on_SlaClockPaused(self, message: m.SlaClockPaused) -> None:  # noqa: N802
        clock = self._clock(message.subject_id, message.data.kind)
        # No deadline while paused: it is set again when the clock resumes.
        clock.update(paused_at=message.data.paused_at.isoformat(), due_at=None)
        if clock.get("state") != "breached":  # a breach stays a breach: it never changes
            clock["state"] = "paused"

    def _on_SlaClockResumed(self, message: m.SlaClockResumed) -> None:  # noqa: N802
        clock = self._clock(message.subject_id, message.data.kind)
        if clock.pop("stopped_at", None) is not None:
            # A reopened ticket's resolution clock runs on: what it measured at the close,
            # and "met", were not final.
            clock.pop("business_minutes", None)
            clock["reopened_at"] = message.data.resumed_at.isoformat()
        if clock.get("state") in ("paused", "met"):
            clock["state"] = "running"  # a breach stays a breach: it never changes
        clock["due_at"] = message.data.due_at.isoformat() if message.data.due_at else None

    def _on_SlaClockRetargeted(self, message: m.SlaClockRetargeted) -> None:  # noqa: N802
        data = message.data
        clock = self._clock(message.subject_id, data.kind)
        clock.update(
            priority=data.priority,
            target_minutes=data.target_minutes,
            due_at=data.due_at.isoformat() if data.due_at else None,
        )

    def _on_SlaWarning(self, message: m.SlaWarning) -> None:  # noqa: N802
        clock = self._clock(message.subject_id, message.data.kind)
        warned = clock.setdefault("warnings", [])
        if message.data.threshold not in warned:
            warned.append(message.data.threshold)
            warned.sort()  # in threshold order, however the messages came

    def _clock(self, ticket_id: uuid.UUID, kind: str) -> dict[str, Any]:
        return self._ticket(ticket_id).sla.setdefault(kind, {"state": "running"})

    def _on_SlaClockStopped(self, message: m.SlaClockStopped) -> None:  # noqa: N802
        clock = self._ticket(message.subject_id).sla.setdefault(message.data.kind, {})
        clock["state"] = "met" if message.data.met else "breached"
        clock["stopped_at"] = message.data.stopped_at.isoformat()
        if message.data.spent_minutes is not None:
            clock["business_minutes"] = message.data.spent_minutes

    def _on_SlaBreached(self, message: m.SlaBreached) -> None:  # noqa: N802
        clock = self._ticket(message.subject_id).sla.setdefault(message.data.kind, {})
        clock["breached_at"] = message.data.breached_at.isoformat()  # the deadline
        if message.data.noticed_at is not None:  # later for a backdated ticket
            clock["breach_noticed_at"] = message.data.noticed_at.isoformat()
        if clock.get("state", "running") == "running":
            clock["state"] = "breached"

    def _on_AgreementRegistered(self, message: m.AgreementRegistered) -> None:  # noqa: N802
        self.agreements[message.subject_id] = {
            "agreement_id": str(message.subject_id),
            **message.data.model_dump(mode="json"),
        }

    def _on_StatementIssued(self, message: m.StatementIssued) -> None:  # noqa: N802
        data = message.data
        self.statements[(data.agreement_id, data.month)] = data.model_dump(mode="json")

    def _on_NotificationSent(self, message: m.NotificationSent) -> None:  # noqa: N802
        self._note_notification(message.data.subject_line, "sent")

    def _on_NotificationFailed(self, message: m.NotificationFailed) -> None:  # noqa: N802
        self._note_notification(message.data.subject_line, "failed")

    def _note_notification(self, subject_line: str, outcome: str) -> None:
        found = _REFERENCE.search(subject_line)
        if found is None:
            return
        entries = self.notifications.setdefault(found.group(1), [])
        entry = f"{outcome}: {subject_line}"
        if entry not in entries:
            entries.append(entry)


_REFERENCE = re.compile(r"\[(SD-\d+)\]")
