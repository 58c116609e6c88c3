"""Mail in, over a real SMTP exchange (smtplib against intake's aiosmtpd listener) on a real
SQLite event store: stored before 250, decided once, threaded, looped mail set aside.

The relay and the broker are left out here (tests/test_mail_end_to_end.py has them): the
test plays the relay by translating the stored events and handing `ReceiveMail` and
`AgreementRegistered` to intake's handlers, as the consumer would (`conftest.Desk`).
"""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from servicedesk_contracts import messages as m
from servicedesk_intake.inbox import InboundMail
from servicedesk_runtime.consumer import Rejected
from servicedesk_runtime.metrics import CATALOGUE

from .conftest import DESK, HYGGE, KUNDE, NORDLICHT, NOW, Desk, kunde_terms

CORPUS = Path(__file__).parents[3] / "tests" / "data" / "mail"


def mail(
    subject: str,
    body: str = "The nightly backup failed again.",
    sender: str = "Jana Weber <jana@nordlicht.de>",
    message_id: str | None = "<a1@mail.nordlicht.de>",
    **headers: str,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = DESK
    message["Subject"] = subject
    if message_id:
        message["Message-ID"] = message_id
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


async def send(
    desk: Desk, message: EmailMessage | bytes, sender: str = "jana@nordlicht.de"
) -> None:
    await asyncio.to_thread(desk.send, message, sender)


async def test_a_mail_from_a_known_domain_opens_a_ticket_when_it_reached_the_listener(
    desk: Desk,
) -> None:
    await send(desk, mail("Backups failing"))
    desk.clock.advance(timedelta(minutes=30))  # intake decides later: the clock started before
    [opened] = desk.events(m.TicketOpened)
    data = opened.data
    assert (data.agreement_id, data.channel, data.subject) == (
        NORDLICHT,
        "email",
        "Backups failing",
    )
    assert (data.reporter_email, data.reporter_name) == ("jana@nordlicht.de", "Jana Weber")
    assert (data.impact, data.urgency) == ("medium", "medium")  # the agreement's mail terms
    assert data.received_at == NOW
    assert data.message_id == "<a1@mail.nordlicht.de>"
    assert data.body == "The nightly backup failed again."


async def test_the_same_message_id_twice_opens_one_ticket(desk: Desk) -> None:
    await send(desk, mail("Backups failing"))
    await send(desk, mail("Backups failing"))
    assert len(desk.events(m.TicketOpened)) == 1


async def test_a_reply_with_the_reference_lands_on_the_ticket_and_reopens_a_closed_one(
    desk: Desk,
) -> None:
    await send(desk, mail("Backups failing"))
    [opened] = desk.events(m.TicketOpened)
    reference = opened.data.reference
    desk.apply(
        m.ChangeTicketStatus.create(
            producer="gateway",
            subject_id=opened.subject_id,
            data={"status": "closed", "changed_by": "mette"},
        )
    )
    reply = mail(
        f"AW: Re: [{reference}] Backups failing",
        "Still broken.\n\nOn Mon, 23 Nov 2026 at 10:02, Desk <support@desk.example> wrote:\n> old",
        message_id="<a2@mail.nordlicht.de>",
    )
    await send(desk, reply)
    published = [message for _, message in desk.published()]
    [replied] = [p for p in published if isinstance(p, m.CustomerReplied)]
    assert replied.subject_id == opened.subject_id
    assert replied.data.body == "Still broken."  # the quoted history is trimmed
    assert (replied.data.channel, replied.data.message_id) == ("email", "<a2@mail.nordlicht.de>")
    changes = [p for p in published if isinstance(p, m.TicketStatusChanged)]
    assert [(s.data.from_status, s.data.to_status) for s in changes][-1] == ("closed", "open")
    assert not [p for p in published if isinstance(p, m.TicketOpened)]


async def test_a_reply_threads_by_in_reply_to_without_the_reference(desk: Desk) -> None:
    await send(desk, mail("Backups failing"))
    [opened] = desk.events(m.TicketOpened)
    colleague = mail(
        "Re: Backups failing",
        "Same here.",
        sender="Tom <tom@nordlicht.de>",
        message_id="<b1@mail.nordlicht.de>",
        In_Reply_To="<a1@mail.nordlicht.de>",
    )
    await send(desk, colleague, sender="tom@nordlicht.de")
    [replied] = desk.events(m.CustomerReplied)
    assert (replied.subject_id, replied.data.author_email) == (
        opened.subject_id,
        "tom@nordlicht.de",
    )


async def test_a_reply_to_our_own_message_id_finds_the_ticket_by_its_reference(desk: Desk) -> None:
    await send(desk, mail("Backups failing"))
    [opened] = desk.events(m.TicketOpened)
    ours = f"<{uuid.uuid4()}.{opened.data.reference}@desk.example>"
    await send(desk, mail("Re: your mail", "Thanks", message_id="<a3@x.de>", In_Reply_To=ours))
    [replied] = desk.events(m.CustomerReplied)
    assert replied.subject_id == opened.subject_id


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Auto_Submitted": "auto-replied"}, "Auto-Submitted"),
        ({"Precedence": "bulk"}, "Precedence"),
        ({"X_Auto_Response_Suppress": "All"}, "X-Auto-Response-Suppress"),
        ({"List_Id": "<ops.lists.nordlicht.de>"}, "mailing list"),
    ],
)
async def test_machine_mail_never_opens_or_reopens_a_ticket_and_is_kept_visible(
    desk: Desk, headers: dict[str, str], why: str
) -> None:
    await send(desk, mail("Backups failing"))
    [opened] = desk.events(m.TicketOpened)
    auto = mail(f"Out of office: [{opened.data.reference}]", message_id="<oof@x.de>", **headers)
    await send(desk, auto)
    published = [message for _, message in desk.published()]
    [aside] = [p for p in published if isinstance(p, m.MailSetAside)]
    assert (aside.data.reason, aside.data.answer_to) == ("automatic", None)
    assert why in aside.data.detail
    assert aside.data.reference == opened.data.reference
    assert desk.blobs.contains(aside.data.sha256)  # the raw mail is kept
    assert not [p for p in published if isinstance(p, m.CustomerReplied | m.TicketOpened)]


async def test_a_bounce_with_an_empty_envelope_sender_is_set_aside(desk: Desk) -> None:
    await send(desk, mail("Undeliverable: Backups failing", message_id="<dsn@x.de>"), sender="")
    [aside] = desk.events(m.MailSetAside)
    assert aside.data.reason == "automatic"


async def test_our_own_mail_coming_back_is_set_aside(desk: Desk) -> None:
    await send(desk, mail("Hello", message_id=f"<{uuid.uuid4()}@desk.example>"))
    [aside] = desk.events(m.MailSetAside)
    assert "our own" in aside.data.detail


async def test_a_runaway_sender_is_stopped_after_the_hourly_limit(desk: Desk) -> None:
    for number in range(7):
        await send(desk, mail(f"Alert {number}", message_id=f"<alert{number}@x.de>"))
    published = [message for _, message in desk.published()]
    assert len([p for p in published if isinstance(p, m.TicketOpened)]) == 5
    limited = [p for p in published if isinstance(p, m.MailSetAside)]
    assert [a.data.reason for a in limited] == ["rate_limited", "rate_limited"]


async def test_an_unknown_sender_is_set_aside_as_unmatched(desk: Desk) -> None:
    await send(
        desk, mail("Hi", sender="x@unknown.example", message_id="<u@x>"), "x@unknown.example"
    )
    [aside] = desk.events(m.MailSetAside)
    assert (aside.data.reason, aside.data.sender) == ("unmatched", "x@unknown.example")


async def test_only_designated_contacts_may_open_tickets_on_a_v_agreement(desk: Desk) -> None:
    await send(desk, mail("Hjælp", sender="Ole <ole@hygge.dk>", message_id="<o@h>"), "ole@hygge.dk")
    [aside] = desk.events(m.MailSetAside)
    assert aside.data.reason == "not_a_support_contact"
    assert aside.data.answer_to == "ole@hygge.dk"
    assert aside.data.allowed_contacts == ["mette@hygge.dk", "lars@hygge.dk"]
    assert aside.data.language == "da"
    await send(desk, mail("Hjælp", sender="Mette <mette@hygge.dk>", message_id="<me@h>"))
    [opened] = desk.events(m.TicketOpened)
    assert (opened.data.agreement_id, opened.data.language) == (HYGGE, "da")


async def test_after_the_reopen_window_a_reply_opens_a_new_ticket_that_follows_up(
    desk: Desk,
) -> None:
    await send(desk, mail("Hjælp", sender="Mette <mette@hygge.dk>", message_id="<me@h>"))
    [opened] = desk.events(m.TicketOpened)
    desk.apply(
        m.ChangeTicketStatus.create(
            producer="gateway",
            subject_id=opened.subject_id,
            occurred_at=NOW,
            data={"status": "closed", "changed_by": "lars"},
        )
    )
    desk.clock.advance(timedelta(days=15))  # V reopens within 14 days only
    late = mail(f"SV: [{opened.data.reference}] Hjælp", "Igen", "mette@hygge.dk", "<me2@h>")
    await send(desk, late)
    published = [message for _, message in desk.published()]
    [follow_up] = [p for p in published if isinstance(p, m.TicketOpened)]
    assert follow_up.subject_id != opened.subject_id
    assert (follow_up.data.agreement_id, follow_up.data.body) == (HYGGE, "Igen")
    links = {(p.subject_id, p.data.kind) for p in published if isinstance(p, m.TicketLinked)}
    assert links == {(follow_up.subject_id, "follows_up"), (opened.subject_id, "followed_up_by")}


async def test_mail_for_another_address_is_refused_in_the_dialogue(desk: Desk) -> None:
    def send_elsewhere() -> None:
        with smtplib.SMTP("127.0.0.1", desk.port, timeout=10) as client:
            client.sendmail("a@b.de", ["someone@else.example"], b"Subject: x\r\n\r\nx")

    with pytest.raises(smtplib.SMTPRecipientsRefused):
        await asyncio.to_thread(send_elsewhere)
    assert desk.published() == []


async def test_attachments_are_kept_as_blobs_and_recorded_by_hash(desk: Desk) -> None:
    message = mail("Screenshot")
    content = bytes(range(256)) * 4000
    message.add_attachment(content, maintype="image", subtype="png", filename="fejl.png")
    await send(desk, message)
    [opened] = desk.events(m.TicketOpened)
    [attachment] = opened.data.attachments
    assert (attachment.filename, attachment.content_type) == ("fejl.png", "image/png")
    assert attachment.size == len(content)
    assert desk.blobs.get(attachment.sha256) == content


async def test_a_stored_mail_is_decided_once_even_when_its_command_comes_twice(desk: Desk) -> None:
    await send(desk, mail("Backups failing"))
    [receive] = [c for _, c in desk.published() if isinstance(c, m.ReceiveMail)]
    desk.apply(receive)  # the consumer got it again (a retried batch)
    assert desk.events(m.TicketOpened) == []
    mail_id = receive.subject_id
    stored = desk.store.repository.get(mail_id)
    assert isinstance(stored, InboundMail)
    assert stored.outcome == "new_ticket"


async def test_an_agent_reply_is_threaded_under_the_customers_last_mail_and_sets_a_status(
    desk: Desk,
) -> None:
    await send(desk, mail("Backups failing"))
    [opened] = desk.events(m.TicketOpened)
    await send(desk, mail(f"Re: [{opened.data.reference}] x", "More", message_id="<a9@n.de>"))
    desk.published()
    desk.apply(
        m.ReplyAsAgent.create(
            producer="gateway",
            subject_id=opened.subject_id,
            data={"agent": "Lars", "body": "Which job?", "next_status": "awaiting_reply"},
        )
    )
    desk.apply(
        m.AddInternalNote.create(
            producer="gateway",
            subject_id=opened.subject_id,
            data={"author": "Lars", "body": "Probably the NAS again"},
        )
    )
    published = [message for _, message in desk.published()]
    [replied] = [p for p in published if isinstance(p, m.AgentReplied)]
    assert replied.data.thread is not None
    assert replied.data.thread.in_reply_to == "<a9@n.de>"
    assert replied.data.thread.references == ["<a1@mail.nordlicht.de>", "<a9@n.de>"]
    assert replied.data.thread.subject == "Backups failing"
    [status] = [p for p in published if isinstance(p, m.TicketStatusChanged)]
    assert (status.data.to_status, status.data.changed_by) == ("awaiting_reply", "Lars")
    [note] = [p for p in published if isinstance(p, m.InternalNoteAdded)]
    assert (note.data.author, note.data.body) == ("Lars", "Probably the NAS again")


def corpus_mail(name: str, reference: str) -> bytes:
    """A corpus mail as it goes over SMTP (CRLF lines), naming this desk's ticket."""
    raw = (CORPUS / name).read_bytes().replace(b"SD-000123", reference.encode())
    raw = raw.replace(b"@example.com>", b"@desk.example>")  # our Message-IDs: this desk's
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


async def test_the_mail_corpus_over_smtp_files_replies_opens_requests_and_sets_machines_aside(
    desk: Desk,
) -> None:
    await send(desk, mail("Printer virker ikke", sender="Søren <soeren.oestergaard@kunde.dk>"))
    [opened] = desk.events(m.TicketOpened)
    reference = opened.data.reference
    for name in ("outlook_reply.eml", "gmail_reply.eml", "apple_mail_reply.eml"):
        await send(desk, corpus_mail(name, reference))
    for name in ("bounce_dsn.eml", "out_of_office.eml", "mailing_list.eml"):
        await send(desk, corpus_mail(name, reference))
    for name in ("danish_qp_subject.eml", "html_only.eml"):
        await send(desk, corpus_mail(name, reference))
    published = [message for _, message in desk.published()]

    replies = [p for p in published if isinstance(p, m.CustomerReplied)]
    assert len(replies) == 3
    assert {r.subject_id for r in replies} == {opened.subject_id}
    assert all(r.data.body and ">" not in r.data.body.splitlines()[0] for r in replies)
    assert not any("wrote:" in r.data.body or "skrev" in r.data.body for r in replies)
    aside = [p for p in published if isinstance(p, m.MailSetAside)]
    assert sorted(a.data.reason for a in aside) == ["automatic"] * 3
    assert all(a.data.answer_to is None for a in aside)  # a machine is never answered
    new = [p for p in published if isinstance(p, m.TicketOpened)]
    subjects = {t.data.subject for t in new}
    assert "Fejl i lønkørsel: ferietillæg mangler på lønsedlen" in subjects
    assert "Ny henvendelse: VPN falder ud" in subjects
    html = next(t for t in new if t.data.subject.startswith("Ny henvendelse"))
    assert "<" not in html.data.body
    assert all(t.data.agreement_id == KUNDE for t in new)


async def test_a_mail_without_message_id_is_kept_once_by_its_content(desk: Desk) -> None:
    raw = corpus_mail("no_message_id.eml", "SD-000001").replace(b"hansen-vvs.dk", b"kunde.dk")
    await send(desk, raw, sender="ole@kunde.dk")
    await send(desk, raw, sender="ole@kunde.dk")  # the sender's server tried again
    [opened] = desk.events(m.TicketOpened)
    assert opened.data.message_id is None
    assert opened.data.subject == "Kan ikke logge ind i portalen"


async def test_a_20_mb_attachment_arrives_whole(desk: Desk) -> None:
    big = mail("Faktura kan ikke åbnes", sender="Hanne <hanne@kunde.dk>")
    content = (bytes(range(256)) * 4096)[: 1 << 20] * 20  # 20 MiB
    big.add_attachment(content, maintype="application", subtype="pdf", filename="Faktura.pdf")
    await send(desk, big, sender="hanne@kunde.dk")
    [opened] = desk.events(m.TicketOpened)
    [attachment] = opened.data.attachments
    assert (attachment.size, attachment.content_type) == (20 << 20, "application/pdf")
    assert desk.blobs.get(attachment.sha256) == content


async def test_a_first_request_registers_its_reporter_as_a_contact_once(desk: Desk) -> None:
    await send(desk, mail("Backups failing"))
    await send(desk, mail("Another thing", message_id="<a7@mail.nordlicht.de>"))
    [contact] = desk.events(m.ContactRegistered)
    assert (contact.data.email, contact.data.name) == ("jana@nordlicht.de", "Jana Weber")
    assert (contact.data.agreement_id, contact.data.channel) == (NORDLICHT, "email")


async def test_split_and_link(desk: Desk) -> None:
    await send(desk, mail("Backups failing and VPN down"))
    [original] = desk.events(m.TicketOpened)
    desk.clock.advance(timedelta(hours=3))
    split = m.SplitTicket.create(
        producer="gateway",
        subject_id=original.subject_id,
        data={"subject": "VPN down", "body": "VPN drops every hour", "split_by": "Lars"},
    )
    desk.apply(split)
    desk.apply(split)  # the same command again: one new ticket
    published = [message for _, message in desk.published()]
    [part] = [p for p in published if isinstance(p, m.TicketOpened)]
    assert part.subject_id == m.ticket_id_for_request(split.event_id)
    assert (part.data.subject, part.data.reporter_email) == ("VPN down", "jana@nordlicht.de")
    assert part.data.received_at == original.data.received_at  # the original receipt time
    linked = {(p.subject_id, p.data.kind) for p in published if isinstance(p, m.TicketLinked)}
    assert linked == {(part.subject_id, "split_from"), (original.subject_id, "split_into")}
    link = m.LinkTickets.create(
        producer="gateway",
        subject_id=original.subject_id,
        data={"kind": "blocks", "other_ticket_id": part.subject_id, "linked_by": "Lars"},
    )
    desk.apply(link)
    published = [message for _, message in desk.published()]
    linked = {(p.subject_id, p.data.kind) for p in published if isinstance(p, m.TicketLinked)}
    assert linked == {(original.subject_id, "blocks"), (part.subject_id, "blocked_by")}
    with pytest.raises(Rejected):
        desk.apply(link)  # the same link again changes nothing


async def test_an_agreement_without_a_channel_refuses_requests_by_it(desk: Desk) -> None:
    basic = uuid.UUID("00000000-0000-4000-8000-0000000000ba")
    terms = {**kunde_terms(), "customer": "Basis ApS", "channels": ["portal"]}
    terms["mail"] = {**terms["mail"], "email_domains": ["basis.dk"]}
    desk.apply(m.AgreementRegistered.create(producer="billing", subject_id=basic, data=terms))
    await send(desk, mail("Login", sender="Mette <mette@basis.dk>", message_id="<b@basis.dk>"))
    [aside] = desk.events(m.MailSetAside)
    assert (aside.data.reason, aside.data.answer_to) == ("channel_not_allowed", "mette@basis.dk")
    call = m.SubmitTicket.create(
        producer="gateway",
        subject_id=uuid.uuid4(),
        occurred_at=NOW,
        data={
            "agreement_id": basic,
            "reporter_email": "mette@basis.dk",
            "reporter_name": "Mette",
            "organisation": "Basis ApS",
            "channel": "phone",
            "subject": "Login",
            "body": "Cannot log in",
            "category": "support",
            "impact": "low",
            "urgency": "low",
        },
    )
    with pytest.raises(Rejected, match="takes no phone requests"):
        desk.apply(call)


async def test_an_agent_files_an_unmatched_mail_on_an_agreement(desk: Desk) -> None:
    await send(desk, mail("Hi", sender="Eve <eve@unknown.example>", message_id="<u1@x>"))
    [aside] = desk.events(m.MailSetAside)
    desk.clock.advance(timedelta(hours=2))
    filing = m.FileMail.create(
        producer="gateway",
        subject_id=aside.data.mail_id,
        data={"agreement_id": NORDLICHT, "filed_by": "mette"},
    )
    desk.apply(filing)
    published = [message for _, message in desk.published()]
    [opened] = [p for p in published if isinstance(p, m.TicketOpened)]
    assert (opened.data.agreement_id, opened.data.reporter_email) == (
        NORDLICHT,
        "eve@unknown.example",
    )
    assert opened.data.received_at == NOW  # when the mail reached us, not when it was filed
    [filed] = [p for p in published if isinstance(p, m.MailFiled)]
    assert (filed.data.reference, filed.data.filed_by) == (opened.data.reference, "mette")
    with pytest.raises(Rejected, match="already"):
        desk.apply(filing)


async def test_a_stranger_naming_a_ticket_is_set_aside_and_a_copied_colleague_is_not(
    desk: Desk,
) -> None:
    await send(desk, mail("Backups failing"))
    [opened] = desk.events(m.TicketOpened)
    reference = opened.data.reference
    # Someone of another customer guesses the reference.
    stranger = mail(f"Re: [{reference}] x", "Ha", "Mallory <m@hygge.dk>", "<s1@hygge.dk>")
    await send(desk, stranger, sender="m@hygge.dk")
    published = [message for _, message in desk.published()]
    [aside] = [p for p in published if isinstance(p, m.MailSetAside)]
    assert (aside.data.reason, aside.data.answer_to) == ("not_on_ticket", None)
    assert not [p for p in published if isinstance(p, m.CustomerReplied)]
    # A colleague with a private address, answering the reporter's mail (copied in).
    copied = mail(
        f"Re: [{reference}] Backups failing",
        "Same here",
        "Tom <tom.private@gmail.example>",
        "<c1@gmail.example>",
        In_Reply_To="<a1@mail.nordlicht.de>",
    )
    await send(desk, copied, sender="tom.private@gmail.example")
    [replied] = desk.events(m.CustomerReplied)
    assert (replied.subject_id, replied.data.author_email) == (
        opened.subject_id,
        "tom.private@gmail.example",
    )


async def test_a_mail_that_cannot_make_a_request_is_set_aside_not_dead_lettered(
    desk: Desk,
) -> None:
    long_name = "Jana " + "von Nordlicht " * 40  # a display name far over 200 characters
    await send(desk, mail("Backups", sender=f"{long_name} <jana@nordlicht.de>"))
    [opened] = desk.events(m.TicketOpened)
    assert len(opened.data.reporter_name) == 200
    # An address the mail parser takes but the contract refuses (two dots in a row).
    raw = mail("Hi", sender="x <jana..x@nordlicht.de>", message_id="<bad@x>").as_bytes()
    await send(desk, raw, sender="x@nordlicht.de")
    [aside] = desk.events(m.MailSetAside)
    assert aside.data.reason == "unreadable"
    assert "reporter_email" in aside.data.detail


_HEADER_NAMES = ["From", "Subject", "Message-ID", "In-Reply-To", "References", "Auto-Submitted"]
_ODD_VALUES = st.sampled_from(
    [
        "Jana <jana@nordlicht.de>",
        "jana@nordlicht.de",
        "<>",
        "[SD-000001] Re: x",
        "=?utf-8?q?=E2=80=A8?=",
        "\udcff",
        "<a@b> <c@d>",
        "x" * 1200,
        "no",
        "=?x-unknown?b?AAAA?=",
    ]
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    headers=st.lists(
        st.tuples(st.sampled_from(_HEADER_NAMES), _ODD_VALUES | st.text()), max_size=8
    ),
    body=st.binary(max_size=2000),
)
def test_any_stored_mail_is_decided_never_refused(
    desk: Desk, headers: list[tuple[str, str]], body: bytes
) -> None:
    """Whatever arrives, the handler decides it (a ticket, a reply or set aside) and never
    raises: a raise would dead-letter the mail's command and leave it undecided."""
    lines = [f"{name}: {value}".encode("utf-8", "surrogateescape") for name, value in headers]
    raw = b"\r\n".join([*lines, b"", body])
    mail = desk.keeper.keep(
        raw, source="smtp", envelope_from="x@y.de", envelope_to=[DESK], received_at=NOW
    )
    assume(mail)  # a repeat of an earlier example's Message-ID: nothing new to decide
    [command] = [c for _, c in desk.published() if isinstance(c, m.ReceiveMail)] or [None]
    assert command is not None
    stored = desk.store.repository.get(command.subject_id)
    assert isinstance(stored, InboundMail)
    assert stored.decided


async def test_a_customer_reply_keeps_its_author_and_channel(desk: Desk) -> None:
    await send(desk, mail("Backups failing"))
    [opened] = desk.events(m.TicketOpened)
    desk.apply(
        m.AddCustomerReply.create(
            producer="gateway",
            subject_id=opened.subject_id,
            data={
                "author_email": "jana@nordlicht.de",
                "author_name": "Tom (colleague)",
                "body": "From the portal",
                "channel": "portal",
            },
        )
    )
    [replied] = desk.events(m.CustomerReplied)
    assert (replied.data.author_name, replied.data.channel) == ("Tom (colleague)", "portal")


async def test_a_domain_another_agreement_lists_moves_to_it_and_says_so(desk: Desk) -> None:
    before = CATALOGUE.get_sample_value("servicedesk_mail_addresses_moved_total") or 0.0
    rival = uuid.UUID("00000000-0000-4000-8000-0000000000ee")
    terms = {**kunde_terms(), "customer": "Rival GmbH"}
    terms["mail"] = {**terms["mail"], "email_domains": ["nordlicht.de"]}
    desk.apply(m.AgreementRegistered.create(producer="billing", subject_id=rival, data=terms))
    assert CATALOGUE.get_sample_value("servicedesk_mail_addresses_moved_total") == before + 1
    await send(desk, mail("Backups failing"))
    [opened] = desk.events(m.TicketOpened)
    assert opened.data.agreement_id == rival  # the last registered wins, loudly


async def test_a_mail_that_cannot_be_stored_gets_451_and_the_senders_retry_keeps_it(
    desk: Desk,
) -> None:
    """The blob store unwritable (a file where its folder should be; root ignores modes):
    no 250, nothing recorded; once it is writable, the sender's next try is stored."""
    folder = desk.blobs.folder
    assert not folder.exists()  # nothing stored yet in this desk
    folder.write_text("not a folder")
    with pytest.raises(smtplib.SMTPDataError) as deferred:
        await send(desk, mail("Backups failing"))
    assert deferred.value.smtp_code == 451
    assert desk.published() == []  # nothing recorded: the sender still has the mail
    folder.unlink()
    await send(desk, mail("Backups failing"))  # the sending server tries again later
    [opened] = desk.events(m.TicketOpened)
    assert opened.data.subject == "Backups failing"
