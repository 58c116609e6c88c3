"""What the notifier says, to whom, and how its mail is built (pure: no broker, no server)."""

from __future__ import annotations

import smtplib
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any

import pytest
from jinja2 import Environment

from servicedesk_contracts import messages as m
from servicedesk_intake.inbox import reference_in_our_id
from servicedesk_notifier.domain import (
    Delivery,
    TicketAbout,
    _templates,
    agent_reply,
    assignment_notice,
    closed_notice,
    mail_refusal,
    message_id,
    sla_breach_alert,
    sla_warning_alert,
    ticket_confirmation,
)
from servicedesk_notifier.smtp import Unsendable, build_mail, is_transient
from servicedesk_notifier.translate import translate

DUE = datetime(2026, 11, 24, 9, 15, tzinfo=UTC)


def opened(
    subject: str = "Backups failing", email: str = "jana@nordlicht.de", **more: Any
) -> m.TicketOpened:
    return m.TicketOpened.create(
        producer="intake",
        subject_id=uuid.uuid4(),
        data={
            "agreement_id": uuid.uuid4(),
            "reporter_email": email,
            "reporter_name": "Jana",
            "organisation": "Nordlicht GmbH",
            "channel": "email",
            "subject": subject,
            "body": "Every nightly job fails",
            "category": "incident",
            "impact": "high",
            "urgency": "high",
            "reference": "SD-000042",
            "received_at": DUE,
            **more,
        },
    )


def clock_data(**more: Any) -> dict[str, Any]:
    return {
        "clock_id": uuid.uuid4(),
        "reference": "SD-000042",
        "kind": "response",
        "priority": "P1",
        "due_at": DUE,
        **more,
    }


def test_a_ticket_is_confirmed_to_its_reporter_with_the_reference_in_the_subject() -> None:
    notification = ticket_confirmation(opened())
    assert notification.kind == "ticket_confirmation"
    assert notification.recipient == "jana@nordlicht.de"
    assert notification.subject_line == "[SD-000042] We received your request: Backups failing"
    assert "Dear Jana," in notification.body
    assert "registered it as SD-000042" in notification.body


def test_a_breach_alerts_the_on_call_address_naming_target_and_priority() -> None:
    breached = m.SlaBreached.create(
        producer="sla-timer", subject_id=uuid.uuid4(), data=clock_data(breached_at=DUE)
    )
    notification = sla_breach_alert(breached, "oncall@example.com")
    assert notification.kind == "sla_breach"
    assert notification.recipient == "oncall@example.com"
    assert notification.subject_line == "[SD-000042] SLA response target breached (P1)"
    assert "Due at:      2026-11-24T09:15:00+00:00" in notification.body


def test_a_warning_says_how_much_of_the_target_is_used() -> None:
    warning = m.SlaWarning.create(
        producer="sla-timer",
        subject_id=uuid.uuid4(),
        data=clock_data(threshold=0.75, warned_at=DUE),
    )
    notification = sla_warning_alert(warning, "oncall@example.com")
    assert notification.kind == "sla_warning"
    assert notification.recipient == "oncall@example.com"
    assert notification.subject_line == "[SD-000042] SLA response target 75% used (P1)"


@pytest.mark.parametrize("breaking", ["\r\nBcc: all@example.com\r\n", "\n", "\u2028", "\x85"])
def test_a_subject_line_stays_one_line_whatever_the_reporter_typed(breaking: str) -> None:
    notification = ticket_confirmation(opened(f"Printer{breaking}broken"))
    assert len(notification.subject_line.splitlines()) == 1
    assert notification.subject_line.startswith("[SD-000042] We received your request: Printer ")
    mail = build_mail(notification, "sd@example.com", "<x@servicedesk>")
    parsed = message_from_bytes(mail.as_bytes(), policy=default_policy)
    assert parsed["Bcc"] is None
    assert " ".join(parsed["Subject"].split()) == notification.subject_line  # folded at most


def test_the_message_id_is_derived_from_the_delivery_and_names_the_ticket() -> None:
    cause = uuid.uuid4()
    delivery_id = Delivery.create_id(cause, "ticket_confirmation")
    assert delivery_id == Delivery.create_id(cause, "ticket_confirmation")
    assert delivery_id != Delivery.create_id(cause, "sla_breach")
    ours = message_id(delivery_id, "SD-000042", "example.com")
    assert ours == f"<{delivery_id}.SD-000042@example.com>"
    first = build_mail(ticket_confirmation(opened()), "sd@example.com", ours)
    again = build_mail(ticket_confirmation(opened()), "sd@example.com", ours)
    assert first["Message-ID"] == again["Message-ID"] == ours
    # intake reads the reference back out of it (a reply that lost our subject line)
    assert reference_in_our_id(ours, "example.com") == "SD-000042"
    assert reference_in_our_id(ours, "elsewhere.example") is None


def test_a_mailed_request_is_confirmed_in_its_thread_as_an_automatic_reply() -> None:
    request = opened(message_id="<CAF=1@mail.nordlicht.de>")
    mail = build_mail(ticket_confirmation(request), "sd@example.com", "<x@example.com>")
    assert mail["In-Reply-To"] == "<CAF=1@mail.nordlicht.de>"
    assert mail["References"] == "<CAF=1@mail.nordlicht.de>"
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["X-Servicedesk-Kind"] == "ticket_confirmation"  # whatever its language


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", "We received your request"),
        ("da", "Vi har modtaget din henvendelse"),
        ("nl", "We hebben uw verzoek ontvangen"),
    ],
)
def test_the_confirmation_speaks_the_reporters_language(language: str, words: str) -> None:
    request = opened("Løn", language=language)
    notification = ticket_confirmation(request)
    assert notification.subject_line == f"[SD-000042] {words}: Løn"
    assert "SD-000042" in notification.body


def thread(**more: Any) -> dict[str, Any]:
    return {
        "reporter_email": "mette@hygge.dk",
        "reporter_name": "Mette",
        "subject": "Login fejler",
        "in_reply_to": "<m2@hygge.dk>",
        "references": ["<m1@hygge.dk>", "<m2@hygge.dk>"],
        "language": "da",
        **more,
    }


def test_an_agent_reply_goes_to_the_reporter_threaded_under_their_last_mail() -> None:
    replied = m.AgentReplied.create(
        producer="intake",
        subject_id=uuid.uuid4(),
        data={
            "reference": "SD-000042",
            "agent": "Lars",
            "body": "Prøv at logge ind igen.",
            "replied_at": DUE,
            "thread": thread(),
        },
    )
    notification = agent_reply(replied)
    assert notification is not None
    mail = build_mail(notification, "sd@example.com", "<x@example.com>")
    assert (mail["To"], mail["Subject"]) == ("mette@hygge.dk", "Re: [SD-000042] Login fejler")
    assert mail["In-Reply-To"] == "<m2@hygge.dk>"
    assert mail["References"] == "<m1@hygge.dk> <m2@hygge.dk>"
    assert mail["Auto-Submitted"] is None  # a person wrote it
    assert "Prøv at logge ind igen." in notification.body
    assert "behold SD-000042 i emnelinjen" in notification.body


def test_a_closed_ticket_is_told_to_its_reporter_unless_they_closed_it() -> None:
    def closed(by: str) -> m.TicketStatusChanged:
        return m.TicketStatusChanged.create(
            producer="intake",
            subject_id=uuid.uuid4(),
            data={
                "reference": "SD-000042",
                "from_status": "in_progress",
                "to_status": "closed",
                "changed_by": by,
                "thread": thread(language="nl"),
            },
        )

    notice = closed_notice(closed("Lars"))
    assert notice is not None
    assert notice.subject_line == "[SD-000042] Uw verzoek is afgehandeld: Login fejler"
    assert closed_notice(closed("mette@hygge.dk")) is None


def set_aside(**more: Any) -> m.MailSetAside:
    return m.MailSetAside.create(
        producer="intake",
        subject_id=uuid.uuid4(),
        data={
            "mail_id": uuid.uuid4(),
            "reason": "not_a_support_contact",
            "detail": "ole@hygge.dk is not a support contact of Hygge Software ApS",
            "sha256": "0" * 64,
            "sender": "ole@hygge.dk",
            "subject": "Hjælp",
            "message_id": "<o1@hygge.dk>",
            "received_at": DUE,
            "answer_to": "ole@hygge.dk",
            "allowed_contacts": ["mette@hygge.dk", "lars@hygge.dk"],
            "language": "da",
            **more,
        },
    )


def test_a_refused_person_is_answered_naming_who_may_submit_and_a_machine_never() -> None:
    refusal = mail_refusal(set_aside())
    assert refusal is not None
    assert refusal.recipient == "ole@hygge.dk"
    assert "mette@hygge.dk, lars@hygge.dk" in refusal.body
    assert refusal.headers["Auto-Submitted"] == "auto-replied"
    assert refusal.headers["In-Reply-To"] == "<o1@hygge.dk>"
    assert mail_refusal(set_aside(reason="automatic", answer_to=None)) is None


def test_an_alert_names_subject_customer_priority_and_deadline() -> None:
    breached = m.SlaBreached.create(
        producer="sla-timer", subject_id=uuid.uuid4(), data=clock_data(breached_at=DUE)
    )
    about = TicketAbout("Backups failing", "Nordlicht GmbH")
    alert = sla_breach_alert(breached, "oncall@nordlicht-support.example", about)
    assert alert.recipient == "oncall@nordlicht-support.example"
    assert alert.subject_line == "[SD-000042] Nordlicht GmbH: SLA response target breached (P1)"
    for fact in ("Backups failing", "Nordlicht GmbH", "P1", DUE.isoformat()):
        assert fact in alert.body


def test_the_mail_carries_the_notification_as_built_by_the_email_package() -> None:
    mail = build_mail(ticket_confirmation(opened()), "sd@example.com", "<x@servicedesk>")
    parsed = message_from_bytes(mail.as_bytes(), policy=default_policy)
    assert parsed["From"] == "sd@example.com"
    assert parsed["To"] == "jana@nordlicht.de"
    assert parsed["Subject"] == "[SD-000042] We received your request: Backups failing"
    assert "registered it as SD-000042" in parsed.get_content()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "recipient", ["jana@nordlicht.de\n", "jana@nordlicht.de\r\nBcc: x@y.de", "a@b.de\u2028"]
)
def test_a_header_with_a_line_break_makes_the_mail_unsendable_not_split(recipient: str) -> None:
    # A trailing newline passes the email package's own check and would end the header
    # block after To:, sending Subject, Date and Message-ID as body.
    notification = replace(ticket_confirmation(opened()), recipient=recipient)
    with pytest.raises(Unsendable, match="line break"):
        build_mail(notification, "sd@example.com", "<x@servicedesk>")


def test_only_an_absent_or_busy_server_is_worth_another_attempt() -> None:
    assert is_transient(ConnectionRefusedError())
    assert is_transient(smtplib.SMTPServerDisconnected("gone"))
    assert is_transient(smtplib.SMTPResponseException(421, b"busy"))
    assert not is_transient(smtplib.SMTPResponseException(554, b"no"))
    assert not is_transient(smtplib.SMTPRecipientsRefused({"a@b.de": (550, b"unknown")}))
    assert is_transient(smtplib.SMTPRecipientsRefused({"a@b.de": (452, b"full")}))
    assert not is_transient(ValueError("bug"))


def test_a_request_stays_inside_and_an_outcome_becomes_a_receipt() -> None:
    notification = ticket_confirmation(opened())
    cause = uuid.uuid4()
    delivery = Delivery(
        caused_by=cause,
        kind=notification.kind,
        recipient=notification.recipient,
        subject_line=notification.subject_line,
        body=notification.body,
    )
    delivery.record_sent(attempts=1)
    requested, sent = delivery.collect_events()
    assert translate(requested) is None
    topic, receipt = translate(sent)  # type: ignore[misc]
    assert topic == "servicedesk.notifications.v1"
    assert isinstance(receipt, m.NotificationSent)
    assert receipt.data.notification_id == delivery.id
    assert receipt.data.caused_by == cause
    assert receipt.data.recipient == "jana@nordlicht.de"

    failing = Delivery(
        caused_by=cause,
        kind="sla_breach",
        recipient="oncall@example.com",
        subject_line="s",
        body="",
    )
    failing.record_failed("SMTPDataError: (554, b'no')", attempts=1)
    _, failed = failing.collect_events()
    _, failure = translate(failed)  # type: ignore[misc]
    assert isinstance(failure, m.NotificationFailed)
    assert failure.data.error == "SMTPDataError: (554, b'no')"
    assert failing.done
    assert failing.outcome == "failed"


@pytest.mark.parametrize(
    ("error", "receipt"), [(None, "NotificationSent"), ("x", "NotificationFailed")]
)
def test_a_delivery_stored_before_dispatch_after_commit_still_becomes_its_receipt(
    error: str | None, receipt: str
) -> None:
    # Then `Sent` created the delivery and carried `error`; the store rebuilds a stored
    # event as an object of the class its topic names, with the stored attributes.
    legacy = object.__new__(Delivery.Sent)
    legacy.__dict__.update(
        originator_id=uuid.uuid4(),
        originator_version=1,
        timestamp=DUE,
        caused_by=uuid.uuid4(),
        kind="ticket_confirmation",
        recipient="jana@nordlicht.de",
        subject_line="[SD-000042] We received your request: Backups failing",
        error=error,
    )
    _, message = translate(legacy)  # type: ignore[misc]
    assert message.event_type == receipt


def test_the_new_assignee_is_told_who_assigned_it_and_why() -> None:
    def assigned(email: str | None, assignee: str | None = "Mette Jensen") -> m.TicketAssigned:
        return m.TicketAssigned.create(
            producer="intake",
            subject_id=uuid.uuid4(),
            data={
                "reference": "SD-000042",
                "assignee": assignee,
                "group": "second-line",
                "previous_assignee": "Jens Poulsen",
                "assigned_by": "Lars Holm",
                "reason": "knows the firmware",
                "assignee_email": email,
                "assigned_at": DUE,
            },
        )

    notice = assignment_notice(assigned("mette@provider-v.dk"))
    assert notice is not None
    assert notice.recipient == "mette@provider-v.dk"
    assert notice.subject_line == "[SD-000042] Assigned to you by Lars Holm"
    assert "It was Jens Poulsen's before." in notice.body
    assert "Why: knows the firmware" in notice.body
    assert assignment_notice(assigned(None)) is None  # no address in the directory
    assert assignment_notice(assigned("x@y.example", assignee=None)) is None  # unassigned


def test_each_template_is_read_and_compiled_once_however_many_mails_use_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _templates.cache_clear()  # a fresh process's environment
    loader = _templates().loader
    assert loader is not None
    loads: Counter[str] = Counter()
    read = loader.get_source

    def counted_read(environment: Environment, name: str) -> tuple[str, str | None, Any]:
        loads[name] += 1
        return read(environment, name)

    monkeypatch.setattr(loader, "get_source", counted_read)
    for n in range(5):
        ticket_confirmation(opened(subject=f"Request {n}", language="da"))
    assert loads == {"da/ticket_confirmation.txt": 1}
    assert not _templates().auto_reload  # no file checked for changes at each render
