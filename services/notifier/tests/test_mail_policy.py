"""The notifier's mail policy is a faster way to the same bytes as the email package's
default policy, except for non-ASCII free text (a Subject), which it writes as whole
encoded words so that it reads back as it was written; the default policy's folding
loses whitespace there."""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from servicedesk_notifier.domain import Notification
from servicedesk_notifier.smtp import MAIL_POLICY, Unsendable, build_mail

ascii_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=120)
any_text = st.text(max_size=120)
names = st.sampled_from(["Subject", "To", "From", "In-Reply-To", "References", "X-Note"])
free_text_names = {"Subject", "X-Note", "In-Reply-To", "References"}  # unstructured
one_line_text = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=200
).filter(lambda text: text.splitlines() in ([], [text]))
DANISH_SUBJECT = (
    "[SD-000123] Vi har modtaget din henvendelse: Fakturaen mangler på de seneste ordrer – Søren"
)


def written(mail: EmailMessage, policy: object) -> bytes:
    return mail.as_bytes(policy=policy)  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(name=names, value=st.one_of(ascii_text, any_text))
@example(name="Subject", value="x" * 70)  # the line's length at and around the limit
@example(name="Subject", value="x" * 69)
@example(name="Subject", value="x" * 71)
@example(name="Subject", value="  spaced   out  ")
@example(name="Subject", value="=?utf-8?q?encoded?=")
@example(name="To", value='"Doe, John" <john@example.com>, jane@example.com')
@example(name="To", value="Søren Ærø <soren@example.dk>")
@example(name="Subject", value="")
def test_a_header_is_written_as_the_default_policy_writes_it(name: str, value: str) -> None:
    if name in free_text_names and not value.isascii():
        return  # written as whole encoded words (the tests below)
    ours, theirs = EmailMessage(policy=MAIL_POLICY), EmailMessage(policy=default_policy)
    try:
        theirs[name] = value
    except Exception:
        return  # refused by the email package (some garbage even with IndexError)
    ours[name] = value
    ours.set_content("body")
    theirs.set_content("body")
    try:
        expected = written(theirs, default_policy)
    except Exception:
        return
    assert written(ours, MAIL_POLICY) == expected


@settings(max_examples=200, deadline=None)
@given(
    recipient=st.sampled_from(
        ["user1@nordlicht.de", "Søren Ærø <soren@example.dk>", '"Doe, J." <j@example.com>']
    ),
    subject=ascii_text,
    body=any_text,
)
def test_a_whole_mail_is_written_as_the_default_policy_writes_it(
    recipient: str, subject: str, body: str
) -> None:
    notification = Notification("ticket_confirmation", recipient, subject, body)
    try:
        mail = build_mail(notification, "Support <support@desk.example>", "<a.SD-1@desk.example>")
    except Unsendable:
        return
    assert mail.policy is MAIL_POLICY
    assert written(mail, MAIL_POLICY) == written(mail, default_policy)


def read_back(mail: EmailMessage, name: str) -> str:
    """The header as a receiving mail program shows it (RFC 2047 decoding)."""
    return str(message_from_bytes(written(mail, MAIL_POLICY), policy=default_policy)[name])


def test_a_danish_subject_reads_back_as_it_was_written() -> None:
    """The default policy's folding makes this "... mangler  på ... ordrer" followed by
    the en dash glued to "Søren": a space doubled at the fold, and the one between two
    encoded words dropped."""
    theirs = EmailMessage(policy=default_policy)
    theirs["Subject"] = DANISH_SUBJECT
    sent_by_default = message_from_bytes(written(theirs, default_policy), policy=default_policy)
    assert sent_by_default["Subject"] != DANISH_SUBJECT  # the flaw this policy mends
    notification = Notification("ticket_confirmation", "soren@example.dk", DANISH_SUBJECT, "Tak")
    mail = build_mail(notification, "support@desk.example", "<a.SD-123@desk.example>")
    assert read_back(mail, "Subject") == DANISH_SUBJECT
    assert max(map(len, written(mail, MAIL_POLICY).splitlines())) <= 78


@settings(max_examples=500, deadline=None)
@given(subject=st.one_of(one_line_text, ascii_text.filter(str.isprintable)))
@example(subject="ordrer – Søren")
@example(subject="a" * 60 + " æ  b")
@example(subject="  indrykket  æ  ")
def test_any_subject_reads_back_as_it_was_written(subject: str) -> None:
    """Exactly, on lines of at most 78 characters; only leading whitespace of plain ASCII
    text is lost (a header's value starts after it)."""
    notification = Notification("ticket_confirmation", "soren@example.dk", subject, "Tak")
    mail = build_mail(notification, "support@desk.example", "<a.SD-123@desk.example>")
    expected = subject if not subject.isascii() else subject.lstrip()
    assert read_back(mail, "Subject") == expected
    if not subject.isascii():
        assert max(map(len, written(mail, MAIL_POLICY).splitlines())) <= 78


def test_an_address_the_email_package_chokes_on_makes_the_mail_unsendable() -> None:
    """The email package fails on some garbage with IndexError: that is this mail's
    failure (recorded, listed), never an error that fails the dispatch round again and
    again and holds up every mail after it."""
    for garbage in ['"', "a<", ',"']:
        notification = Notification("ticket_confirmation", garbage, "Subject", "Body")
        with pytest.raises(Unsendable, match="IndexError"):
            build_mail(notification, "support@desk.example", "<a@desk.example>")
