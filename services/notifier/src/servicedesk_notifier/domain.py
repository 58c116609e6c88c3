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
        subject_line=f"[{data.reference}] We received your request: {data.subject}",
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


class Delivery(Aggregate):
    """One notification for one event: sent or failed, recorded once."""

    # Event classes that @event creates, declared for type checkers.
    Sent: ClassVar[type[Any]]

    @staticmethod
    def create_id(caused_by: uuid.UUID, kind: str, **_: object) -> uuid.UUID:
        return uuid.uuid5(caused_by, f"delivery:{kind}")

    @event("Sent")
    def __init__(
        self,
        caused_by: uuid.UUID,
        kind: str,
        recipient: str,
        subject_line: str,
        error: str | None,
    ) -> None:
        self.error = error
