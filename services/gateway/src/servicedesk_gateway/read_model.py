"""The gateway's query view: a projection of the topics, kept in memory.

It holds nothing the topics do not: at every start it is rebuilt by reading them from the
beginning. Applying a message twice changes nothing (every update is keyed by its subject).
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
    reference: str
    agreement_id: uuid.UUID
    status: str
    subject: str
    reporter_email: str
    organisation: str
    channel: str
    category: str
    received_at: str
    priority: str | None = None
    triage_reason: str | None = None
    sla: dict[str, dict[str, Any]] = field(default_factory=dict)
    agent_replies: int = 0
    customer_replies: int = 0
    minutes_logged: int = 0
    notifications: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "ticket_id": str(self.ticket_id), "reference": self.reference,
            "agreement_id": str(self.agreement_id), "status": self.status,
            "subject": self.subject, "reporter_email": self.reporter_email,
            "organisation": self.organisation, "channel": self.channel,
            "category": self.category, "received_at": self.received_at,
            "priority": self.priority, "triage_reason": self.triage_reason,
            "sla": self.sla, "agent_replies": self.agent_replies,
            "customer_replies": self.customer_replies, "minutes_logged": self.minutes_logged,
            "notifications": self.notifications,
        }


class ReadModel:
    def __init__(self) -> None:
        self.tickets: dict[uuid.UUID, TicketView] = {}
        self.agreements: dict[uuid.UUID, dict[str, Any]] = {}
        self.statements: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}
        self.by_reference: dict[str, uuid.UUID] = {}
        self.applied = 0

    def apply(self, message: Message) -> None:
        handler = getattr(self, f"_on_{message.event_type}", None)
        if handler is not None:
            handler(message)
            self.applied += 1

    def _on_TicketOpened(self, message: m.TicketOpened) -> None:  # noqa: N802
        data = message.data
        if message.subject_id in self.tickets:
            return
        self.tickets[message.subject_id] = TicketView(
            ticket_id=message.subject_id, reference=data.reference,
            agreement_id=data.agreement_id, status="open", subject=data.subject,
            reporter_email=data.reporter_email, organisation=data.organisation,
            channel=data.channel, category=data.category,
            received_at=data.received_at.isoformat(),
        )
        self.by_reference[data.reference] = message.subject_id

    def _on_TicketStatusChanged(self, message: m.TicketStatusChanged) -> None:  # noqa: N802
        if ticket := self.tickets.get(message.subject_id):
            ticket.status = message.data.to_status

    def _on_AgentReplied(self, message: m.AgentReplied) -> None:  # noqa: N802
        if ticket := self.tickets.get(message.subject_id):
            ticket.agent_replies += 1

    def _on_CustomerReplied(self, message: m.CustomerReplied) -> None:  # noqa: N802
        if ticket := self.tickets.get(message.subject_id):
            ticket.customer_replies += 1

    def _on_TimeLogged(self, message: m.TimeLogged) -> None:  # noqa: N802
        if ticket := self.tickets.get(message.subject_id):
            ticket.minutes_logged += message.data.duration_minutes

    def _on_TicketTriaged(self, message: m.TicketTriaged) -> None:  # noqa: N802
        if ticket := self.tickets.get(message.subject_id):
            ticket.priority = message.data.priority
            ticket.triage_reason = message.data.reason

    def _on_SlaClockStarted(self, message: m.SlaClockStarted) -> None:  # noqa: N802
        if ticket := self.tickets.get(message.subject_id):
            data = message.data
            ticket.sla[data.kind] = {
                "state": "running", "priority": data.priority,
                "target_minutes": data.target_minutes,
                "started_at": data.started_at.isoformat(), "due_at": data.due_at.isoformat(),
            }

    def _on_SlaClockStopped(self, message: m.SlaClockStopped) -> None:  # noqa: N802
        if (ticket := self.tickets.get(message.subject_id)) and message.data.kind in ticket.sla:
            clock = ticket.sla[message.data.kind]
            clock["state"] = "met" if message.data.met else "breached"
            clock["stopped_at"] = message.data.stopped_at.isoformat()

    def _on_SlaBreached(self, message: m.SlaBreached) -> None:  # noqa: N802
        if (ticket := self.tickets.get(message.subject_id)) and message.data.kind in ticket.sla:
            clock = ticket.sla[message.data.kind]
            clock["breached_at"] = message.data.breached_at.isoformat()
            if clock["state"] == "running":
                clock["state"] = "breached"

    def _on_AgreementRegistered(self, message: m.AgreementRegistered) -> None:  # noqa: N802
        self.agreements[message.subject_id] = {
            "agreement_id": str(message.subject_id), **message.data.model_dump(mode="json")
        }

    def _on_StatementIssued(self, message: m.StatementIssued) -> None:  # noqa: N802
        data = message.data
        self.statements[(data.agreement_id, data.month)] = data.model_dump(mode="json")

    def _on_NotificationSent(self, message: m.NotificationSent) -> None:  # noqa: N802
        self._note_notification(message.data.subject_line, "sent")

    def _on_NotificationFailed(self, message: m.NotificationFailed) -> None:  # noqa: N802
        self._note_notification(message.data.subject_line, "failed")

    def _note_notification(self, subject_line: str, outcome: str) -> None:
        # Receipts name their ticket only by the reference in the subject line.
        found = _REFERENCE.search(subject_line)
        ticket = self.tickets.get(self.by_reference.get(found.group(1), uuid.UUID(int=0))) if found else None
        entry = f"{outcome}: {subject_line}"
        if ticket is not None and entry not in ticket.notifications:
            ticket.notifications.append(entry)


_REFERENCE = re.compile(r"\[(SD-\d+)\]")
