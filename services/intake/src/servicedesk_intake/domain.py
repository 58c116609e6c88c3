"""Tickets and their reference numbers (pure: no I/O)."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate, event

CLOSED = "closed"
AWAITING_REPLY = "awaiting_reply"
IN_PROGRESS = "in_progress"


class TicketRuleBroken(Exception):
    """A command the ticket refuses; `reason` is a short label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class ReferenceSequence(Aggregate):
    """Hands out ticket reference numbers: unique, increasing, never reused (a number is
    an event, so it survives restarts and is never handed out twice)."""

    ID = uuid.UUID("7f3c2a9e-5d1b-4e8f-a6c0-1b2d3e4f5a6b")
    SNAPSHOT_EVERY = 100
    """It gains an event per ticket for ever: loading it reads its latest snapshot and
    fewer than this many events after it."""

    @staticmethod
    def create_id() -> uuid.UUID:
        return ReferenceSequence.ID

    @event("Started")
    def __init__(self) -> None:
        self.last_number = 0

    def next_reference(self) -> str:
        self._issue(number=self.last_number + 1)
        return f"SD-{self.last_number:06d}"

    @property
    def due_for_snapshot(self) -> bool:
        return self.version % self.SNAPSHOT_EVERY == 0

    @event("Issued")
    def _issue(self, number: int) -> None:
        self.last_number = number


class Ticket(Aggregate):
    # Event classes that @event creates, declared for type checkers.
    Opened: ClassVar[type[Any]]
    StatusChanged: ClassVar[type[Any]]
    AgentReplied: ClassVar[type[Any]]
    CustomerReplied: ClassVar[type[Any]]
    TimeLogged: ClassVar[type[Any]]
    PriorityChangeRequested: ClassVar[type[Any]]
    Assigned: ClassVar[type[Any]]
    InternalNoteAdded: ClassVar[type[Any]]
    Linked: ClassVar[type[Any]]

    # Tickets opened before assignment existed have never been assigned.
    assignee: str | None = None
    group: str | None = None
    # The customer's Message-IDs on this ticket, oldest first (the mail conversation).
    customer_mail_ids: tuple[str, ...] = ()
    closed_at: datetime | None = None
    links: tuple[tuple[str, uuid.UUID], ...] = ()
    """(kind, other ticket id) of every link of this ticket."""

    @staticmethod
    def create_id(ticket_id: uuid.UUID, **_: Any) -> uuid.UUID:
        return ticket_id

    @event("Opened")
    def __init__(
        self,
        ticket_id: uuid.UUID,
        reference: str,
        request: dict[str, Any],
        received_at: datetime,
        request_id: uuid.UUID,
    ) -> None:
        self.reference = reference
        self.request = request
        self.received_at = received_at
        self.status = "open"
        self.agent_replies = 0
        if request.get("message_id"):
            self.customer_mail_ids = (request["message_id"],)

    @property
    def agreement_id(self) -> uuid.UUID:
        return uuid.UUID(str(self.request["agreement_id"]))

    @property
    def category(self) -> str:
        return str(self.request["category"])

    def mail_thread(self) -> dict[str, Any] | None:
        """How a mail to the reporter is threaded (`MailThread`): in reply to their last
        mail, referring to every mail of theirs on the ticket. None for a request without a
        reporter's address (never from the contract; tests build such tickets)."""
        if "reporter_email" not in self.request:
            return None
        return {
            "reporter_email": self.request["reporter_email"],
            "reporter_name": self.request.get("reporter_name", ""),
            "subject": self.request.get("subject", ""),
            "in_reply_to": self.customer_mail_ids[-1] if self.customer_mail_ids else None,
            "references": list(self.customer_mail_ids[-20:]),
            "language": self.request.get("language") or "en",
        }

    def change_status(self, to_status: str, changed_by: str, reason: str, at: datetime) -> None:
        if to_status == self.status:
            raise TicketRuleBroken("no_change", f"{self.reference} is already {to_status}")
        self._status_changed(
            reference=self.reference,
            from_status=self.status,
            to_status=to_status,
            changed_by=changed_by,
            reason=reason,
            changed_at=at,
            thread=self.mail_thread(),
        )

    # Every event names the ticket's reference (and what else its message needs), so the
    # outbox relay can publish it without loading the ticket.
    @event("StatusChanged")
    def _status_changed(
        self,
        reference: str,
        from_status: str,
        to_status: str,
        changed_by: str,
        reason: str,
        changed_at: datetime,
        thread: dict[str, Any] | None = None,
    ) -> None:
        self.status = to_status
        self.closed_at = changed_at if to_status == CLOSED else None

    def request_priority_change(
        self, priority: str, changed_by: str, by_customer: bool, reason: str, at: datetime
    ) -> None:
        if self.status == CLOSED:
            raise TicketRuleBroken("ticket_closed", f"{self.reference} is closed: reopen it first")
        self._priority_change_requested(
            reference=self.reference,
            priority=priority,
            changed_by=changed_by,
            by_customer=by_customer,
            reason=reason,
            requested_at=at,
        )

    @event("PriorityChangeRequested")
    def _priority_change_requested(
        self,
        reference: str,
        priority: str,
        changed_by: str,
        by_customer: bool,
        reason: str,
        requested_at: datetime,
    ) -> None:
        pass

    def assign(
        self,
        assignee: str | None,
        group: str | None,
        assigned_by: str,
        reason: str,
        assignee_email: str | None,
        at: datetime,
    ) -> None:
        """Assigns to an agent and/or a group (both None: unassigned). Taking the ticket
        from an agent needs a reason; a closed ticket is reopened first."""
        if self.status == CLOSED:
            raise TicketRuleBroken("ticket_closed", f"{self.reference} is closed: reopen it first")
        if (assignee, group) == (self.assignee, self.group):
            raise TicketRuleBroken("no_change", f"{self.reference} is assigned so already")
        if self.assignee is not None and assignee != self.assignee and not reason.strip():
            raise TicketRuleBroken(
                "reason_required", f"{self.reference} is {self.assignee}'s: say why it moves"
            )
        self._assigned(
            reference=self.reference,
            assignee=assignee,
            group=group,
            previous_assignee=self.assignee,
            previous_group=self.group,
            assigned_by=assigned_by,
            reason=reason,
            assignee_email=assignee_email,
            assigned_at=at,
        )

    @event("Assigned")
    def _assigned(
        self,
        reference: str,
        assignee: str | None,
        group: str | None,
        previous_assignee: str | None,
        previous_group: str | None,
        assigned_by: str,
        reason: str,
        assignee_email: str | None,
        assigned_at: datetime,
    ) -> None:
        self.assignee = assignee
        self.group = group

    def reply_as_agent(
        self, agent: str, body: str, replied_at: datetime, next_status: str | None = None
    ) -> None:
        """A public reply (mailed to the reporter); `next_status` moves the ticket on with
        it, e.g. to awaiting_reply when the reply asks the customer something."""
        if self.status == CLOSED:
            raise TicketRuleBroken("ticket_closed", f"{self.reference} is closed: reopen it first")
        self._agent_replied(
            reference=self.reference,
            agent=agent,
            body=body,
            replied_at=replied_at,
            thread=self.mail_thread(),
        )
        if next_status is not None and next_status != self.status:
            self.change_status(next_status, agent, "with a reply", replied_at)

    @event("AgentReplied")
    def _agent_replied(
        self,
        reference: str,
        agent: str,
        body: str,
        replied_at: datetime,
        thread: dict[str, Any] | None = None,
    ) -> None:
        self.agent_replies += 1

    def link(
        self, kind: str, other_id: uuid.UUID, other_reference: str, by: str, at: datetime
    ) -> None:
        """One side of a link (the other ticket records the inverse)."""
        if other_id == self.id:
            raise TicketRuleBroken("self_link", f"{self.reference} cannot be linked to itself")
        if (kind, other_id) in self.links:
            raise TicketRuleBroken("no_change", f"{self.reference} {kind} {other_reference}")
        self._linked(
            reference=self.reference,
            kind=kind,
            other_ticket_id=other_id,
            other_reference=other_reference,
            linked_by=by,
            linked_at=at,
        )

    @event("Linked")
    def _linked(
        self,
        reference: str,
        kind: str,
        other_ticket_id: uuid.UUID,
        other_reference: str,
        linked_by: str,
        linked_at: datetime,
    ) -> None:
        self.links = (*self.links, (kind, other_ticket_id))

    def add_internal_note(self, author: str, body: str, at: datetime) -> None:
        """A note for agents: never mailed, never shown to customers. Allowed on a closed
        ticket too (what was found out after closing is worth keeping)."""
        self._internal_note_added(reference=self.reference, author=author, body=body, added_at=at)

    @event("InternalNoteAdded")
    def _internal_note_added(
        self, reference: str, author: str, body: str, added_at: datetime
    ) -> None:
        pass

    def add_customer_reply(
        self,
        author_email: str,
        body: str,
        replied_at: datetime,
        channel: str | None = None,
        message_id: str | None = None,
        attachments: list[dict[str, Any]] | None = None,
        author_name: str | None = None,
    ) -> None:
        """A customer's reply to a closed ticket reopens it (DOMAIN.md 1). A reply to a
        ticket awaiting it puts the ticket back on us: in progress (an agent was working on
        it, or would not have asked), which is never a status a clock pauses in, so a
        paused SLA clock runs again. Other statuses (on hold, planned, ...) wait for
        something else than the customer's answer and stay."""
        self._customer_replied(
            reference=self.reference,
            author_email=author_email,
            body=body,
            replied_at=replied_at,
            channel=channel,
            message_id=message_id,
            attachments=attachments or [],
            author_name=author_name,
        )
        back_on_us = {
            CLOSED: ("open", "customer replied to a closed ticket"),
            AWAITING_REPLY: (IN_PROGRESS, "customer replied"),
        }.get(self.status)
        if back_on_us is not None:
            to_status, reason = back_on_us
            self._status_changed(
                reference=self.reference,
                from_status=self.status,
                to_status=to_status,
                changed_by=author_email,
                reason=reason,
                changed_at=replied_at,
            )

    @event("CustomerReplied")
    def _customer_replied(
        self,
        reference: str,
        author_email: str,
        body: str,
        replied_at: datetime,
        channel: str | None = None,
        message_id: str | None = None,
        attachments: list[dict[str, Any]] | None = None,
        author_name: str | None = None,
    ) -> None:
        if message_id:
            self.customer_mail_ids = (*self.customer_mail_ids, message_id)

    def log_time(
        self,
        entry_id: uuid.UUID,
        agent: str,
        started_at: datetime,
        duration_minutes: int,
        work_type: str,
        billable: bool,
        source: str = "timesheet",
    ) -> None:
        self._time_logged(
            source=source,
            reference=self.reference,
            agreement_id=self.agreement_id,
            category=self.category,
            entry_id=entry_id,
            agent=agent,
            started_at=started_at,
            duration_minutes=duration_minutes,
            work_type=work_type,
            billable=billable,
        )

    @event("TimeLogged")
    def _time_logged(
        self,
        reference: str,
        agreement_id: uuid.UUID,
        category: str,
        entry_id: uuid.UUID,
        agent: str,
        started_at: datetime,
        duration_minutes: int,
        work_type: str,
        billable: bool,
        source: str = "timesheet",
    ) -> None:
        pass


class AgentDay(Aggregate):
    """What one agent logged on one (UTC) day: two entries of one agent may not overlap
    (a timer left running while another starts is a mistake to catch, not to bill)."""

    @staticmethod
    def create_id(agent: str, day: str) -> uuid.UUID:
        return uuid.uuid5(ReferenceSequence.ID, f"agent-day:{agent.lower()}:{day}")

    @event("Started")
    def __init__(self, agent: str, day: str) -> None:
        self.agent = agent
        self.entries: list[dict[str, Any]] = []

    def overlap(self, start: datetime, end: datetime) -> dict[str, Any] | None:
        for entry in self.entries:
            if start < entry["end"] and entry["start"] < end:
                return entry
        return None

    @event("EntryAdded")
    def add(self, entry_id: uuid.UUID, reference: str, start: datetime, end: datetime) -> None:
        self.entries = [
            *self.entries,
            {"entry_id": entry_id, "reference": reference, "start": start, "end": end},
        ]


def days_touched(start: datetime, end: datetime) -> list[str]:
    """The UTC days (ISO dates) an interval [start, end) touches."""
    first = start.astimezone(UTC).date()
    last = (end - timedelta(microseconds=1)).astimezone(UTC).date()
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


class AgentTimer(Aggregate):
    """The one timer an agent may have running."""

    @staticmethod
    def create_id(agent: str) -> uuid.UUID:
        return uuid.uuid5(ReferenceSequence.ID, f"agent-timer:{agent.lower()}")

    @event("Created")
    def __init__(self, agent: str) -> None:
        self.agent = agent
        self.running: dict[str, Any] | None = None

    def start(self, ticket_id: uuid.UUID, reference: str, at: datetime) -> None:
        if self.running is not None:
            raise TicketRuleBroken(
                "timer_running",
                f"{self.agent}'s timer runs on {self.running['reference']} since "
                f"{self.running['started_at'].isoformat()}: stop it first",
            )
        self._started(ticket_id=ticket_id, reference=reference, started_at=at)

    @event("Started")
    def _started(self, ticket_id: uuid.UUID, reference: str, started_at: datetime) -> None:
        self.running = {"ticket_id": ticket_id, "reference": reference, "started_at": started_at}

    def stop(self, ticket_id: uuid.UUID, at: datetime) -> tuple[datetime, int]:
        """Stops the timer on this ticket: (start, whole minutes, at least one)."""
        if self.running is None or self.running["ticket_id"] != ticket_id:
            raise TicketRuleBroken("no_timer", f"{self.agent} has no timer running on this ticket")
        started: datetime = self.running["started_at"]
        minutes = max(math.ceil((at - started).total_seconds() / 60), 1)
        if minutes > 24 * 60:
            raise TicketRuleBroken(
                "absurd_duration",
                f"the timer ran {minutes // 60} hours since {started.isoformat()}: "
                "log the real time as a time sheet entry and stop it",
            )
        self._stopped(stopped_at=at)
        return started, minutes

    @event("Stopped")
    def _stopped(self, stopped_at: datetime) -> None:
        self.running = None
