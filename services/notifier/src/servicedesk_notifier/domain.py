"""Deliveries and what each notification says (pure: no I/O)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate, event
from jinja2 import Environment, PackageLoader, StrictUndefined

from servicedesk_contracts import messages as m


@dataclass(frozen=True)
class Notification:
    kind: str
    recipient: str
    subject_line: str
    body: str


@cache
def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("servicedesk_notifier"),
        undefined=StrictUndefined,
        autoescape=False,  # noqa: S701  plain-text mail, never rendered as HTML
        keep_trailing_newline=True,
    )


def ticket_confirmation(opened: m.TicketOpened) -> Notification:
    """The reference travels in the subject line, so replies land on the same ticket."""
    data = opened.data
    body = (
        _templates()
        .get_template("ticket_confirmation.txt")
        .render(name=data.reporter_name, reference=data.reference, subject=data.subject)
    )
    return Notification(
        kind="ticket_confirmation",
        recipient=data.reporter_email,
        subject_line=one_line(f"[{data.reference}] We received your request: {data.subject}"),
        body=body,
    )


def sla_breach_alert(breached: m.SlaBreached, alert_email: str) -> Notification:
    data = breached.data
    body = (
        _templates()
        .get_template("sla_breach.txt")
        .render(
            kind=data.kind,
            reference=data.reference,
            priority=data.priority,
            due_at=data.due_at.isoformat(),
            breached_at=data.breached_at.isoformat(),
        )
    )
    return Notification(
        kind="sla_breach",
        recipient=alert_email,
        subject_line=f"[{data.reference}] SLA {data.kind} target breached ({data.priority})",
        body=body,
    )


def sla_warning_alert(warning: m.SlaWarning, alert_email: str) -> Notification:
    data = warning.data
    percent = f"{data.threshold:.0%}"
    body = (
        _templates()
        .get_template("sla_warning.txt")
        .render(
            kind=data.kind,
            reference=data.reference,
            priority=data.priority,
            percent=percent,
            due_at=data.due_at.isoformat(),
        )
    )
    return Notification(
        kind="sla_warning",
        recipient=alert_email,
        subject_line=f"[{data.reference}] SLA {data.kind} target {percent} used ({data.priority})",
        body=body,
    )


def assignment_notice(assigned: m.TicketAssigned) -> Notification | None:
    """Tells the new assignee, when the directory gave an address; None otherwise."""
    data = assigned.data
    if data.assignee is None or data.assignee_email is None:
        return None
    body = (
        _templates()
        .get_template("ticket_assigned.txt")
        .render(
            assignee=data.assignee,
            assigned_by=data.assigned_by,
            reference=data.reference,
            group=data.group,
            previous=data.previous_assignee,
            reason=data.reason,
        )
    )
    return Notification(
        kind="ticket_assigned",
        recipient=data.assignee_email,
        subject_line=one_line(f"[{data.reference}] Assigned to you by {data.assigned_by}"),
        body=body,
    )


def one_line(text: str) -> str:
    """A header value is one line: every run of whitespace, line breaks included (CR, LF,
    U+2028...), becomes one space, so nothing a reporter typed can start a new header."""
    return " ".join(text.split())


def message_id(delivery_id: uuid.UUID) -> str:
    """The Message-ID of a delivery's mail: the same for every send of that delivery, so a
    resend after a crash is recognisable as the same mail (never `make_msgid`, which adds
    time, pid and a random number)."""
    return f"<{delivery_id}@servicedesk>"


class Delivery(Aggregate):
    """One notification for one event: requested when the event is applied, then sent or
    failed once, by the dispatcher, after that request was committed."""

    # Event classes that @event creates, declared for type checkers.
    Requested: ClassVar[type[Any]]
    Dispatched: ClassVar[type[Any]]
    Failed: ClassVar[type[Any]]

    class Sent(Aggregate.Created):
        """How a delivery was stored until Nov 2026, when mail went out inside the handler:
        created already sent (`error` None) or failed, in one event. Never written now;
        kept so that a store written then still loads (tests/test_stored_events.py)."""

        caused_by: uuid.UUID
        kind: str
        recipient: str
        subject_line: str
        error: str | None

        def apply(self, aggregate: Aggregate) -> None:
            aggregate.outcome = "sent" if self.error is None else "failed"  # type: ignore[attr-defined]

    @staticmethod
    def create_id(caused_by: uuid.UUID, kind: str, **_: object) -> uuid.UUID:
        return uuid.uuid5(caused_by, f"delivery:{kind}")

    @event("Requested")
    def __init__(
        self, caused_by: uuid.UUID, kind: str, recipient: str, subject_line: str, body: str = ""
    ) -> None:
        self.caused_by = caused_by
        self.kind = kind
        self.recipient = recipient
        self.subject_line = subject_line
        self.body = body
        self.outcome: str | None = None  # "sent" or "failed"

    @property
    def notification(self) -> Notification:
        return Notification(self.kind, self.recipient, self.subject_line, self.body)

    @property
    def message_id(self) -> str:
        return message_id(self.id)

    @property
    def done(self) -> bool:
        return self.outcome is not None

    def record_sent(self, attempts: int) -> None:
        """The mail server accepted the mail. Receipts carry what the notification was."""
        self._sent(self.caused_by, self.kind, self.recipient, self.subject_line, attempts)

    def record_failed(self, error: str, attempts: int) -> None:
        """The mail could not be sent within the retry bounds, or was refused."""
        self._failed(self.caused_by, self.kind, self.recipient, self.subject_line, error, attempts)

    @event("Dispatched")
    def _sent(
        self, caused_by: uuid.UUID, kind: str, recipient: str, subject_line: str, attempts: int
    ) -> None:
        self.outcome = "sent"

    @event("Failed")
    def _failed(
        self,
        caused_by: uuid.UUID,
        kind: str,
        recipient: str,
        subject_line: str,
        error: str,
        attempts: int,
    ) -> None:
        self.outcome = "failed"
