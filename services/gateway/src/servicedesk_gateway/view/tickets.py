"""One ticket as agents see it, and how each event changes it. Pure: no I/O.

Topics are ordered only within themselves, so a ticket's triage or SLA events may arrive
before its `TicketOpened`: they fill a view that the opening completes later. Applying an
event twice is prevented by the projection's bookkeeping, not here.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from servicedesk_contracts import Message
from servicedesk_contracts import messages as m

NO_PRIORITY_RANK = 100
"""Sorts untriaged tickets after every priority."""


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
    updated_at: str = ""
    priority: str | None = None
    triage_reason: str | None = None
    assignee: str | None = None
    group: str | None = None
    sla: dict[str, dict[str, Any]] = field(default_factory=dict)
    agent_replies: int = 0
    customer_replies: int = 0
    minutes_logged: int = 0
    links: list[dict[str, str]] = field(default_factory=list)
    """{kind, ticket_id, reference} of each link to another ticket."""

    @property
    def opened(self) -> bool:
        return bool(self.reference)

    # --- stored form -----------------------------------------------------------------------

    def to_doc(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["ticket_id"] = str(self.ticket_id)
        doc["agreement_id"] = str(self.agreement_id) if self.agreement_id else None
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> TicketView:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in doc.items() if k in known}
        values["ticket_id"] = uuid.UUID(doc["ticket_id"])
        agreement = doc.get("agreement_id")
        values["agreement_id"] = uuid.UUID(agreement) if agreement else None
        return cls(**values)

    # --- what queries filter and sort on ---------------------------------------------------

    def next_due_at(self) -> str | None:
        """The earliest deadline of a clock still running towards it."""
        due = [
            clock["due_at"]
            for clock in self.sla.values()
            if clock.get("state") == "running" and clock.get("due_at")
        ]
        return min(due, key=datetime.fromisoformat) if due else None

    def breached(self) -> bool:
        return any(c.get("state") == "breached" or "breached_at" in c for c in self.sla.values())

    def at_risk(self) -> bool:
        """A clock still running that has passed its first warning."""
        return any(c.get("state") == "running" and c.get("warnings") for c in self.sla.values())

    def priority_rank(self) -> int:
        """1 is most urgent: A and P1 are 1, D and P4 are 4."""
        return priority_rank(self.priority)

    # --- events ----------------------------------------------------------------------------

    def apply(self, message: Message) -> None:
        handler = getattr(self, f"_on_{message.event_type}", None)
        if handler is not None:
            handler(message)
        when = message.occurred_at.isoformat()
        if not self.updated_at or datetime.fromisoformat(when) > datetime.fromisoformat(
            self.updated_at
        ):
            self.updated_at = when

    def _on_TicketOpened(self, message: m.TicketOpened) -> None:  # noqa: N802
        data = message.data
        self.reference = data.reference
        self.agreement_id = data.agreement_id
        self.subject = data.subject
        self.reporter_email = data.reporter_email
        self.organisation = data.organisation
        self.channel = data.channel
        self.category = data.category
        self.received_at = data.received_at.isoformat()

    def _on_TicketStatusChanged(self, message: m.TicketStatusChanged) -> None:  # noqa: N802
        self.status = message.data.to_status

    def _on_AgentReplied(self, message: m.AgentReplied) -> None:  # noqa: N802
        self.agent_replies += 1

    def _on_CustomerReplied(self, message: m.CustomerReplied) -> None:  # noqa: N802
        self.customer_replies += 1

    def _on_TicketLinked(self, message: m.TicketLinked) -> None:  # noqa: N802
        data = message.data
        self.links = [
            *self.links,
            {
                "kind": data.kind,
                "ticket_id": str(data.other_ticket_id),
                "reference": data.other_reference,
            },
        ]

    def _on_InternalNoteAdded(self, message: m.InternalNoteAdded) -> None:  # noqa: N802
        pass  # kept in the ticket's events (the conversation), never counted for customers

    def _on_TimeLogged(self, message: m.TimeLogged) -> None:  # noqa: N802
        self.minutes_logged += message.data.duration_minutes

    def _on_TicketAssigned(self, message: m.TicketAssigned) -> None:  # noqa: N802
        self.assignee = message.data.assignee
        self.group = message.data.group

    def _on_TicketTriaged(self, message: m.TicketTriaged) -> None:  # noqa: N802
        self.priority = message.data.priority
        self.triage_reason = message.data.reason

    def _on_SlaClockStarted(self, message: m.SlaClockStarted) -> None:  # noqa: N802
        data = message.data
        clock = self.sla.setdefault(data.kind, {"state": "running"})
        clock.update(
            priority=data.priority,
            target_minutes=data.target_minutes,
            started_at=data.started_at.isoformat(),
            due_at=data.due_at.isoformat(),
        )

    def _on_SlaClockPaused(self, message: m.SlaClockPaused) -> None:  # noqa: N802
        clock = self._clock(message.data.kind)
        # No deadline while paused: it is set again when the clock resumes.
        clock.update(paused_at=message.data.paused_at.isoformat(), due_at=None)
        if clock.get("state") != "breached":  # a breach stays a breach: it never changes
            clock["state"] = "paused"

    def _on_SlaClockResumed(self, message: m.SlaClockResumed) -> None:  # noqa: N802
        clock = self._clock(message.data.kind)
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
        self._clock(data.kind).update(
            priority=data.priority,
            target_minutes=data.target_minutes,
            due_at=data.due_at.isoformat() if data.due_at else None,
        )

    def _on_SlaWarning(self, message: m.SlaWarning) -> None:  # noqa: N802
        warned = self._clock(message.data.kind).setdefault("warnings", [])
        if message.data.threshold not in warned:
            warned.append(message.data.threshold)
            warned.sort()  # in threshold order, however the messages came

    def _clock(self, kind: str) -> dict[str, Any]:
        return self.sla.setdefault(kind, {"state": "running"})

    def _on_SlaClockStopped(self, message: m.SlaClockStopped) -> None:  # noqa: N802
        clock = self.sla.setdefault(message.data.kind, {})
        clock["state"] = "met" if message.data.met else "breached"
        clock["stopped_at"] = message.data.stopped_at.isoformat()
        if message.data.spent_minutes is not None:
            clock["business_minutes"] = message.data.spent_minutes

    def _on_SlaBreached(self, message: m.SlaBreached) -> None:  # noqa: N802
        clock = self.sla.setdefault(message.data.kind, {})
        clock["breached_at"] = message.data.breached_at.isoformat()  # the deadline
        if message.data.noticed_at is not None:  # later for a backdated ticket
            clock["breach_noticed_at"] = message.data.noticed_at.isoformat()
        if clock.get("state", "running") == "running":
            clock["state"] = "breached"


TICKET_EVENTS = frozenset(
    name[len("_on_") :] for name in vars(TicketView) if name.startswith("_on_")
)
"""Event types that change a ticket's view (their `subject_id` is the ticket)."""

_NUMBERED = re.compile(r"P(\d)")


def priority_rank(priority: str | None) -> int:
    if not priority:
        return NO_PRIORITY_RANK
    numbered = _NUMBERED.fullmatch(priority)
    if numbered:
        return int(numbered.group(1))
    if len(priority) == 1 and priority.isalpha():
        return ord(priority.upper()) - ord("A") + 1
    return NO_PRIORITY_RANK - 1
