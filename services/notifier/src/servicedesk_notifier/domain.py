"""Deliveries and what each notification says (pure: no I/O)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
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
    reference: str | None = None
    """The ticket the mail is about: it goes into our Message-ID, so a reply that lost
    the subject still finds its ticket."""
    headers: dict[str, str] = field(default_factory=dict)
    """Threading (In-Reply-To, References) and Auto-Submitted."""


CONFIRMATION = "ticket_confirmation"
SLA_BREACH = "sla_breach"
SLA_WARNING = "sla_warning"
"""Kinds of notification that a handler's read-ahead names (a delivery's id is derived
from its cause and its kind)."""

AUTO_REPLY = {"Auto-Submitted": "auto-replied"}
"""RFC 3834: an automatic answer to a person's mail (their auto-responders stay quiet)."""
AUTO_GENERATED = {"Auto-Submitted": "auto-generated"}
"""RFC 3834: mail no one's message caused (alerts, notices to agents)."""

_SUBJECTS: dict[str, dict[str, str]] = {
    CONFIRMATION: {
        "en": "[{reference}] We received your request: {subject}",
        "da": "[{reference}] Vi har modtaget din henvendelse: {subject}",
        "nl": "[{reference}] We hebben uw verzoek ontvangen: {subject}",
    },
    "agent_reply": dict.fromkeys(("en", "da", "nl"), "Re: [{reference}] {subject}"),
    "ticket_closed": {
        "en": "[{reference}] Your request has been resolved: {subject}",
        "da": "[{reference}] Din henvendelse er løst: {subject}",
        "nl": "[{reference}] Uw verzoek is afgehandeld: {subject}",
    },
    "mail_refused": {
        "en": "Your request could not be registered: {subject}",
        "da": "Din henvendelse kunne ikke registreres: {subject}",
        "nl": "Uw verzoek kon niet worden geregistreerd: {subject}",
    },
}
"""Subject lines of mail to customers, in their language (English, Danish, Dutch)."""


def _to_customer(kind: str, language: str, **values: Any) -> tuple[str, str]:
    """(subject line, body) of a mail to a customer in their language."""
    subject = _SUBJECTS[kind].get(language, _SUBJECTS[kind]["en"]).format(**values)
    template = _templates().select_template([f"{language}/{kind}.txt", f"en/{kind}.txt"])
    return one_line(subject), template.render(**values)


def threading(in_reply_to: str | None, references: list[str]) -> dict[str, str]:
    """In-Reply-To / References headers that put our mail in the customer's thread."""
    ids = list(dict.fromkeys([*references, *([in_reply_to] if in_reply_to else [])]))
    headers = {"In-Reply-To": in_reply_to} if in_reply_to else {}
    return {**headers, "References": " ".join(ids)} if ids else headers


@cache
def _templates() -> Environment:
    """One environment per process: each template is parsed and compiled once, on first
    use. The templates ship inside the package, so they are never checked for changes
    (Jinja's default stats their files at every render)."""
    return Environment(
        loader=PackageLoader("servicedesk_notifier"),
        auto_reload=False,
        undefined=StrictUndefined,
        autoescape=False,  # noqa: S701  plain-text mail, never rendered as HTML
        keep_trailing_newline=True,
    )


def ticket_confirmation(opened: m.TicketOpened) -> Notification:
    """The reference travels in the subject line, so replies land on the same ticket. A
    mailed request is answered in its thread."""
    data = opened.data
    subject, body = _to_customer(
        CONFIRMATION,
        data.language or "en",
        name=data.reporter_name,
        reference=data.reference,
        subject=data.subject,
    )
    thread = threading(data.message_id, [data.message_id] if data.message_id else [])
    return Notification(
        kind=CONFIRMATION,
        recipient=data.reporter_email,
        subject_line=subject,
        body=body,
        reference=data.reference,
        headers={**thread, **AUTO_REPLY},
    )


def agent_reply(replied: m.AgentReplied) -> Notification | None:
    """An agent's public reply, to the reporter, in the thread of their last mail."""
    data, thread = replied.data, replied.data.thread
    if thread is None:
        return None  # a ticket from before replies were mailed: intake named no reporter
    return _to_reporter("agent_reply", thread, data.reference, {}, agent=data.agent, text=data.body)


def closed_notice(changed: m.TicketStatusChanged) -> Notification | None:
    """Tells the reporter their ticket was closed (and how to reopen it)."""
    data, thread = changed.data, changed.data.thread
    if thread is None or data.to_status != "closed" or data.changed_by == thread.reporter_email:
        return None
    return _to_reporter("ticket_closed", thread, data.reference, AUTO_GENERATED)


def _to_reporter(
    kind: str, thread: m.MailThread, reference: str, headers: dict[str, str], **values: str
) -> Notification:
    """A mail about a ticket to its reporter, in their language and their mail thread."""
    subject, body = _to_customer(
        kind,
        thread.language,
        name=thread.reporter_name,
        reference=reference,
        subject=thread.subject,
        **values,
    )
    return Notification(
        kind=kind,
        recipient=thread.reporter_email,
        subject_line=subject,
        body=body,
        reference=reference,
        headers={**threading(thread.in_reply_to, thread.references), **headers},
    )


def mail_refusal(set_aside: m.MailSetAside) -> Notification | None:
    """Answers a person whose mail was refused (never a machine: `answer_to` is None
    for those), naming who may submit requests."""
    data = set_aside.data
    if data.answer_to is None:
        return None
    subject, body = _to_customer(
        "mail_refused",
        data.language,
        subject=data.subject or "(no subject)",
        reason=data.reason,
        contacts=data.allowed_contacts,
    )
    return Notification(
        kind="mail_refused",
        recipient=data.answer_to,
        subject_line=subject,
        body=body,
        headers={**threading(data.message_id, []), **AUTO_REPLY},
    )


@dataclass(frozen=True)
class TicketAbout:
    """What an alert names besides the clock: the ticket's subject and customer."""

    subject: str
    customer: str


def sla_breach_alert(
    breached: m.SlaBreached, recipient: str, about: TicketAbout | None = None
) -> Notification:
    data = breached.data
    return _alert(
        SLA_BREACH,
        f"SLA {data.kind} target breached ({data.priority})",
        data,
        recipient,
        about,
        breached_at=data.breached_at.isoformat(),
    )


def sla_warning_alert(
    warning: m.SlaWarning, recipient: str, about: TicketAbout | None = None
) -> Notification:
    data = warning.data
    percent = f"{data.threshold:.0%}"
    return _alert(
        SLA_WARNING,
        f"SLA {data.kind} target {percent} used ({data.priority})",
        data,
        recipient,
        about,
        percent=percent,
    )


def _alert(
    kind: str,
    headline: str,
    data: m.SlaBreachedData | m.SlaWarningData,
    recipient: str,
    about: TicketAbout | None,
    **values: str,
) -> Notification:
    """An alert to the on-call address, naming the ticket's subject, customer, priority and
    deadline (when the notifier has seen the ticket open)."""
    body = (
        _templates()
        .get_template(f"{kind}.txt")
        .render(
            kind=data.kind,
            reference=data.reference,
            priority=data.priority,
            due_at=data.due_at.isoformat(),
            subject=about.subject if about else None,
            customer=about.customer if about else None,
            **values,
        )
    )
    customer = f" {about.customer}:" if about else ""
    return Notification(
        kind=kind,
        recipient=recipient,
        subject_line=one_line(f"[{data.reference}]{customer} {headline}"),
        body=body,
        reference=data.reference,
        headers=AUTO_GENERATED,
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
        reference=data.reference,
        headers=AUTO_GENERATED,
    )


def one_line(text: str) -> str:
    """A header value is one line: every run of whitespace, line breaks included (CR, LF,
    U+2028...), becomes one space, so nothing a reporter typed can start a new header."""
    return " ".join(text.split())


def message_id(delivery_id: uuid.UUID, reference: str | None, domain: str) -> str:
    """The Message-ID of a delivery's mail: the same for every send of that delivery, so a
    resend after a crash is recognisable as the same mail (never `make_msgid`, which adds
    time, pid and a random number). It names the ticket (`<delivery.SD-000123@domain>`):
    intake finds the ticket of a reply from its In-Reply-To even without the subject."""
    local = f"{delivery_id}.{reference}" if reference else str(delivery_id)
    return f"<{local}@{domain}>"


class DeliveryRefused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class TicketFacts(Aggregate):
    """What the notifier remembers of a ticket from its opening, so that an alert can name
    its subject and customer and go to its agreement's on-call address."""

    @staticmethod
    def create_id(reference: str, **_: Any) -> uuid.UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"servicedesk:ticket-facts:{reference}")

    @event("Recorded")
    def __init__(self, reference: str, subject: str, customer: str, agreement_id: uuid.UUID):
        self.about = TicketAbout(subject, customer)
        self.agreement_id = agreement_id


class Delivery(Aggregate):
    """One notification for one event: requested when the event is applied, then sent or
    failed once, by the dispatcher, after that request was committed."""

    # Event classes that @event creates, declared for type checkers.
    Requested: ClassVar[type[Any]]
    Dispatched: ClassVar[type[Any]]
    Failed: ClassVar[type[Any]]
    ResendRequested: ClassVar[type[Any]]

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
        self,
        caused_by: uuid.UUID,
        kind: str,
        recipient: str,
        subject_line: str,
        body: str = "",
        reference: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.caused_by = caused_by
        self.kind = kind
        self.recipient = recipient
        self.subject_line = subject_line
        self.body = body
        self.reference = reference
        self.headers = headers or {}
        self.outcome: str | None = None  # "sent" or "failed"

    @property
    def notification(self) -> Notification:
        return Notification(
            self.kind, self.recipient, self.subject_line, self.body, self.reference, self.headers
        )

    def message_id(self, domain: str) -> str:
        return message_id(self.id, self.reference, domain)

    @property
    def done(self) -> bool:
        return self.outcome is not None

    def record_sent(self, attempts: int, message_id: str | None = None) -> None:
        """The mail server accepted the mail. Receipts carry what the notification was."""
        self._sent(
            self.caused_by, self.kind, self.recipient, self.subject_line, attempts, message_id
        )

    def record_failed(self, error: str, attempts: int, message_id: str | None = None) -> None:
        """The mail could not be sent within the retry bounds, or was refused."""
        self._failed(
            self.caused_by,
            self.kind,
            self.recipient,
            self.subject_line,
            error,
            attempts,
            message_id,
        )

    def request_resend(self, requested_by: str) -> None:
        """A failed delivery goes out again (the dispatcher follows these requests too)."""
        if self.outcome != "failed":
            raise DeliveryRefused(
                "not_failed", f"notification {self.id} is {self.outcome or 'pending'}"
            )
        self._resend_requested(requested_by=requested_by)

    @event("ResendRequested")
    def _resend_requested(self, requested_by: str) -> None:
        self.outcome = None

    @event("Dispatched")
    def _sent(
        self,
        caused_by: uuid.UUID,
        kind: str,
        recipient: str,
        subject_line: str,
        attempts: int,
        message_id: str | None = None,
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
        message_id: str | None = None,
    ) -> None:
        self.outcome = "failed"
