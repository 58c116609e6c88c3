"""The mail parser on mail shaped like real clients send it (tests/data/mail), on a mail too
big to keep in the repository, and on hostile input, which must never make it raise."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import fields
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servicedesk_intake.mail import TOO_DEEP, ParsedMail, html_to_text, parse, split_quoted


def _load_mail_corpus() -> ModuleType:
    """tests/mail_corpus.py by its path: the repository's tests/ directory is not a package
    importable from a service's tests (pytest runs with --import-mode=importlib)."""
    path = Path(__file__).resolve().parents[3] / "tests" / "mail_corpus.py"
    spec = importlib.util.spec_from_file_location("servicedesk_tests_mail_corpus", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_mail_corpus = _load_mail_corpus()
ATTACHMENT_NAME: str = _mail_corpus.ATTACHMENT_NAME
ATTACHMENT_TYPE: str = _mail_corpus.ATTACHMENT_TYPE
attachment_content: Callable[[int], bytes] = _mail_corpus.attachment_content
corpus: Callable[[str], bytes] = _mail_corpus.corpus
with_attachment: Callable[[int], bytes] = _mail_corpus.with_attachment

OUR_FIRST = "<0f6a2c1e-8f4b-4c1d-9a77-3b2e5d8c9f10.SD-000123@example.com>"
OUR_SECOND = "<5d1b7c2a-1e9f-4b3a-8c6d-2f4e7a9b0c11.SD-000123@example.com>"
HUMAN_MAIL = [
    "outlook_reply.eml",
    "gmail_reply.eml",
    "apple_mail_reply.eml",
    "danish_qp_subject.eml",
    "html_only.eml",
    "no_message_id.eml",
]
MACHINE_MAIL = ["bounce_dsn.eml", "out_of_office.eml", "mailing_list.eml"]


def parsed(name: str) -> ParsedMail:
    return parse(corpus(name))


def html_part(name: str) -> str:
    """The HTML alternative of a corpus mail (what an HTML-only client would have sent)."""
    mail = BytesParser(policy=policy.default).parsebytes(corpus(name))
    assert isinstance(mail, EmailMessage)
    part = mail.get_body(preferencelist=("html",))
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content


def assert_storable(mail: ParsedMail) -> None:
    """Every text field is clean Unicode (no lone surrogates from undecodable bytes), so it can
    go into an event, JSON or a database as it is; subject and sender name are one line."""
    for item in fields(mail):
        value = getattr(mail, item.name)
        if isinstance(value, str):
            value.encode("utf-8")  # raises on a lone surrogate
    for attachment in mail.attachments:
        f"{attachment.filename} {attachment.content_type}".encode()
    assert len(mail.subject.splitlines()) <= 1
    assert len(mail.sender_name.splitlines()) <= 1


# --- replies from the common clients -----------------------------------------------------------


def test_outlook_reply() -> None:
    mail = parsed("outlook_reply.eml")

    assert mail.sender_email == "soeren.oestergaard@kunde.dk"  # Kunde.dk lower-cased
    assert mail.sender_name == "Søren Østergaard"  # =?utf-8?Q?...?= decoded
    assert mail.subject == "SV: [SD-000123] Printer virker ikke"
    assert mail.reference == "SD-000123"
    assert mail.bare_subject == "Printer virker ikke"
    assert mail.message_id is not None
    assert mail.message_id.endswith("@AM9PR10MB4213.EURPRD10.PROD.OUTLOOK.COM>")
    assert mail.related_ids == [OUR_SECOND, OUR_FIRST]  # In-Reply-To first, no repeats
    assert mail.automatic is None
    assert mail.date is not None
    assert mail.date.isoformat() == "2026-11-23T09:14:22+00:00"
    # The plain alternative is read; the "From: / Sent:" block starts the history.
    assert "fejlkode E-04" in mail.text
    assert mail.text.endswith("Tlf. +45 12 34 56 78")  # the signature is the sender's own
    assert "Sent:" not in mail.text
    assert "Prøv venligst at slukke printeren" not in mail.text
    assert mail.quoted.startswith("From: Servicedesk <servicedesk@example.com>")
    assert "Prøv venligst at slukke printeren" in mail.quoted
    assert mail.attachments == []
    assert mail.defects == []


def test_gmail_reply() -> None:
    mail = parsed("gmail_reply.eml")
    our_id = "<3f1c9a2e-7b4d-4e8a-9c61-0d2f5b8e7a13.SD-000123@example.com>"

    assert mail.sender_email == "mette.kjaer@gmail.com"
    assert mail.sender_name == "Mette Kjær"
    assert mail.subject == "Re: [SD-000123] Printer virker ikke"
    assert mail.reference == "SD-000123"
    assert mail.bare_subject == "Printer virker ikke"
    assert mail.message_id == (
        "<CAF7x+Qm3hJb0sYzW2pK8vR_d1eT9uN4oLqXa5cG6iHfE2kD7wA@mail.gmail.com>"
    )
    assert mail.in_reply_to == [our_id]
    assert mail.related_ids == [our_id, OUR_FIRST]
    assert mail.automatic is None
    # The attribution is wrapped over two lines in the plain part; it still starts the history.
    assert mail.text.startswith("Hej igen,")
    assert mail.text.endswith("Mvh\nMette")
    assert "wrote" not in mail.text
    assert "bakke 2 og se efter" not in mail.text
    assert mail.quoted.startswith("On Mon, 23 Nov 2026 at 10:02, Servicedesk")
    assert "> Prøv venligst at åbne bakke 2" in mail.quoted


def test_apple_mail_reply() -> None:
    mail = parsed("apple_mail_reply.eml")

    assert mail.sender_email == "lars@boegh-revision.dk"
    assert mail.sender_name == "Lars Bøgh"
    assert mail.subject == "AW: [SD-000123] Printer virker ikke"
    assert mail.reference == "SD-000123"
    assert mail.bare_subject == "Printer virker ikke"
    assert mail.related_ids[0] == mail.in_reply_to[0]
    assert mail.related_ids == [
        "<7a9e4c1b-2d3f-4a5b-8c7d-6e5f4a3b2c1d.SD-000123@example.com>",
        OUR_FIRST,
    ]
    assert mail.automatic is None
    # Quoted-printable with a soft line break in the middle of a sentence, and an en dash.
    assert "Det virker nu – tak for hjælpen! Jeg lukker selv sagen på vores side." in mail.text
    assert mail.text.endswith("Bøgh Revision ApS")
    assert "skrev Servicedesk" not in mail.text
    assert "printserveren" not in mail.text
    assert mail.quoted.startswith("> Den 23. nov. 2026 kl. 10.02 skrev Servicedesk")
    assert "printserveren" in mail.quoted


@pytest.mark.parametrize(
    ("name", "new", "old"),
    [
        ("outlook_reply.eml", "fejlkode E-04", "Prøv venligst at slukke printeren"),
        ("gmail_reply.eml", "papir fast i bakke 2", "Prøv venligst at åbne bakke 2"),
        ("apple_mail_reply.eml", "tak for hjælpen", "Vi har genstartet printserveren"),
    ],
)
def test_the_html_alternative_splits_the_same_way(name: str, new: str, old: str) -> None:
    """Were the reply HTML only, its text would still be the new text, history set apart."""
    text, quoted = split_quoted(html_to_text(html_part(name)))

    assert new in text
    assert old not in text
    assert old in quoted
    assert "<" not in text.replace("<servicedesk@example.com>", "")  # no tags left


def test_outlook_html_keeps_the_space_after_bold_labels() -> None:
    """`<b>From:</b><span> Servicedesk` reads "From: Servicedesk", not "From:Servicedesk"."""
    text = html_to_text(html_part("outlook_reply.eml"))

    assert "From: Servicedesk <servicedesk@example.com>" in text
    assert "Sent: Monday, November 23, 2026 10:02 AM" in text


# --- mail sent by machines -------------------------------------------------------------------


@pytest.mark.parametrize("name", MACHINE_MAIL)
def test_machine_mail_is_recognised(name: str) -> None:
    assert parsed(name).automatic is not None


@pytest.mark.parametrize("name", HUMAN_MAIL)
def test_human_mail_is_not_taken_for_a_machine(name: str) -> None:
    assert parsed(name).automatic is None


def test_bounce() -> None:
    mail = parsed("bounce_dsn.eml")

    assert mail.sender_email == "mailer-daemon@mx1.example.com"
    assert mail.subject == "Undelivered Mail Returned to Sender"
    assert mail.automatic == "Auto-Submitted: auto-replied"
    assert mail.reference is None  # our reference is only inside the returned message
    # The notification is the text; the returned message is neither text nor an attachment.
    assert "User unknown in virtual" in mail.text
    assert "Vi har modtaget din henvendelse" not in mail.text
    assert mail.attachments == []


def test_a_bounce_is_known_by_its_report_and_its_sender_alone() -> None:
    """Not every MTA sets Auto-Submitted: the multipart/report and MAILER-DAEMON still tell."""
    raw = corpus("bounce_dsn.eml").replace(b"Auto-Submitted: auto-replied\r\n", b"", 1)
    assert parse(raw).automatic == "a delivery report (delivery-status)"

    plain = raw.replace(b"multipart/report; report-type=delivery-status;", b"multipart/mixed;")
    assert parse(plain).automatic == "sent by mailer-daemon@mx1.example.com"


def test_out_of_office() -> None:
    mail = parsed("out_of_office.eml")

    assert mail.sender_email == "bente.moller@kunde.dk"
    assert mail.sender_name == "Bente Møller"  # iso-8859-1 encoded word
    assert mail.subject == "Automatisk svar: [SD-000123] Printer virker ikke"
    assert mail.reference == "SD-000123"
    assert mail.automatic == "Auto-Submitted: auto-replied"
    assert mail.related_ids == [OUR_SECOND]
    assert "Jeg er på ferie til og med mandag den 30. november" in mail.text


def test_exchange_suppression_header_alone_marks_an_auto_reply() -> None:
    raw = corpus("out_of_office.eml").replace(b"Auto-Submitted: auto-replied\r\n", b"", 1)
    assert parse(raw).automatic == "X-Auto-Response-Suppress"


def test_mailing_list() -> None:
    mail = parsed("mailing_list.eml")

    assert mail.sender_email == "peter.holm@kunde.dk"  # From, not Sender
    assert mail.sender_name == "Peter Holm"
    assert mail.subject == "[It-drift] Planlagt nedetid lørdag"  # mixed raw and encoded word
    assert mail.automatic == "Precedence: list"
    # 8bit UTF-8 body; Mailman's footer comes after its rule and is set apart.
    assert "printkøerne er nede lørdag den 28. november" in mail.text
    assert "mailing list" not in mail.text
    assert "It-drift mailing list" in mail.quoted


def test_list_headers_alone_mark_a_list_mail() -> None:
    raw = corpus("mailing_list.eml").replace(b"Precedence: list\n", b"", 1)
    assert parse(raw).automatic == "a mailing list message"


# --- new requests ------------------------------------------------------------------------------


def test_danish_quoted_printable_subject_and_body() -> None:
    mail = parsed("danish_qp_subject.eml")

    # Two folded ISO-8859-1 encoded words joined without the folding space.
    assert mail.subject == "Fejl i lønkørsel: ferietillæg mangler på lønsedlen"
    assert {"æ", "ø", "å"} <= set(mail.subject)
    assert mail.bare_subject == mail.subject
    assert mail.reference is None
    assert mail.sender_email == "birgitte.sorensen@kunde.dk"
    assert mail.sender_name == "Birgitte Sørensen"
    assert mail.related_ids == []
    assert mail.automatic is None
    assert "Ferietillæg mangler på alle lønsedler" in mail.text
    assert "Birgitte Sørensen" in mail.text  # a signature is not quoted history
    assert mail.quoted == ""
    assert "\ufffd" not in mail.text


def test_html_only_mail_becomes_readable_text() -> None:
    mail = parsed("html_only.eml")

    assert mail.sender_email == "no-reply@kunde.dk"  # From, never Reply-To
    assert mail.subject == "Ny henvendelse: VPN falder ud"
    text = mail.text
    assert "<" not in text
    assert ">" not in text
    assert "trackOpen" not in text  # script
    assert "font-family" not in text  # style
    assert "kontaktformularen" in text.split("\n")[0]  # the <title> is not text
    assert "Nørgaard & Søn ApS" in text  # &amp; decoded
    assert "kontaktformularen på kunde.dk" in text  # &aring;
    assert "i går – kan I hjælpe?" in text  # &ndash; &aelig;
    assert "Navn: Jens Nørgaard" in text  # table cells are not glued together
    assert "Telefon: +45 87 65 43 21" in text
    # <br> is a line break, <p> a paragraph.
    assert "hvert 10. minut.\nDet startede" in text
    assert "Venlig hilsen\nJens" in text


def test_mail_without_message_id() -> None:
    mail = parsed("no_message_id.eml")

    assert mail.message_id is None
    assert mail.sender_email == "ole@hansen-vvs.dk"
    assert mail.sender_name == "Ole Hansen"
    assert mail.subject == "Kan ikke logge ind i portalen"
    assert mail.bare_subject == "Kan ikke logge ind i portalen"
    assert mail.reference is None
    assert mail.related_ids == []
    assert mail.automatic is None
    assert mail.text.startswith("Hej\n\nJeg kan ikke logge ind i kundeportalen.")


@pytest.mark.parametrize("name", HUMAN_MAIL + MACHINE_MAIL)
def test_every_corpus_mail_parses_cleanly(name: str) -> None:
    mail = parsed(name)

    assert_storable(mail)
    assert mail.sender_email is not None
    assert mail.sender_email == mail.sender_email.lower()
    assert mail.date is not None
    assert mail.text


# --- a large attachment ----------------------------------------------------------------------

TWENTY_MB = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def large_mail() -> ParsedMail:
    return parse(with_attachment(TWENTY_MB))


def test_a_20_mb_attachment_is_found_whole(large_mail: ParsedMail) -> None:
    expected = hashlib.sha256(attachment_content(TWENTY_MB)).hexdigest()

    assert len(large_mail.attachments) == 1
    attachment = large_mail.attachments[0]
    assert attachment.filename == ATTACHMENT_NAME
    assert attachment.content_type == ATTACHMENT_TYPE
    assert len(attachment.content) == TWENTY_MB
    assert attachment.sha256 == expected
    assert large_mail.subject == "Faktura 2026-1187 kan ikke åbnes"
    assert large_mail.text.startswith("Hej,\n\nVedhæftet er fakturaen")  # the body, not the PDF


# --- hostile input ---------------------------------------------------------------------------


def nested_multipart(depth: int) -> bytes:
    part = b"Content-Type: text/plain; charset=utf-8\r\n\r\ninderst\r\n"
    for level in range(depth):
        boundary = b"b%d" % level
        part = (
            b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n'
            b"--" + boundary + b"\r\n" + part + b"\r\n--" + boundary + b"--\r\n"
        )
    return b"From: a@kunde.dk\r\nSubject: dyb\r\nMIME-Version: 1.0\r\n" + part


HOSTILE = {
    "empty": b"",
    "garbage": bytes(range(256)) * 8,
    "only a newline": b"\r\n",
    "no colon": b"this is not a header\r\n\r\nbody",
    "invalid utf-8 in headers": (
        b"From: \xc3\x28 S\xf8ren <soeren@kunde.dk>\r\n"
        b"Subject: caf\xe9 \xed\xa0\x80 \xff\xfe lone surrogate\r\n\r\nbody \xff\r\n"
    ),
    "invalid utf-8 in an encoded word": b"Subject: =?utf-8?q?caf=E9_=ED=A0=80?=\r\n\r\nx",
    "unknown charset": (
        b"From: a@kunde.dk\r\nSubject: =?x-unknown?q?ukendt_tegns=E6t?=\r\n"
        b"Content-Type: text/plain; charset=x-unknown\r\n\r\nbl\xe5b\xe6rgr\xf8d\r\n"
    ),
    "a codec that cannot be lenient": (
        b"From: a@kunde.dk\r\nContent-Type: text/plain; charset=idna\r\n\r\nhej\r\n"
    ),
    "the undefined codec": (
        b"From: a@kunde.dk\r\nContent-Type: text/plain; charset=undefined\r\n\r\nhej\r\n"
    ),
    "a non-text codec": b"Content-Type: text/plain; charset=base64\r\n\r\naGVq\r\n",
    "broken base64": (
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!=\r\n"
    ),
    "multipart without boundary": b"Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nhej\r\n",
    "nested 200 levels": nested_multipart(200),
    "nested 2000 levels": nested_multipart(2000),
    "deeply nested comment in From": b"From: a@kunde.dk " + b"(" * 5000 + b"\r\n\r\nx",
    "deeply nested comment in Content-Type": (
        b"From: a@kunde.dk\r\nContent-Type: multipart/mixed; boundary=x "
        + b"(" * 5000
        + b")" * 5000
        + b"\r\n\r\n--x\r\n\r\nhej\r\n--x--\r\n"
    ),
    "deeply nested comment in Content-Disposition": (
        b"From: a@kunde.dk\r\nContent-Disposition: attachment; filename=x " + b"(" * 5000 + b"\r\n"
        b"\r\nhej\r\n"
    ),
    "8-bit attachment name": (
        b'From: a@kunde.dk\r\nContent-Disposition: attachment; filename="l\xf8n\xff.pdf"\r\n'
        b"\r\n%PDF-1.7\r\n"
    ),
    "date out of range": b"Date: Mon, 23 Nov 99999999999999999999 10:00:00 +9999\r\n\r\nx",
    "huge header line": b"Subject: " + b"A" * 1_000_000 + b"\r\n\r\nx",
    "html bomb of open tags": b"Content-Type: text/html\r\n\r\n" + b"<div><blockquote>" * 20_000,
}


@pytest.mark.parametrize("raw", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_input_never_raises(raw: bytes) -> None:
    assert_storable(parse(raw))


def test_200_levels_of_multipart_still_find_the_text() -> None:
    mail = parse(nested_multipart(200))

    assert mail.text == "inderst"
    assert mail.sender_email == "a@kunde.dk"


def test_nesting_beyond_the_stack_keeps_the_headers() -> None:
    """Too deep for Python's parser: the body is given up (the raw record has it), the
    headers still say who wrote, and the defect says why the text is empty."""
    mail = parse(nested_multipart(2000))

    assert mail.sender_email == "a@kunde.dk"
    assert mail.subject == "dyb"
    assert mail.text == ""
    assert mail.defects == [TOO_DEEP]


@pytest.mark.parametrize("charset", [b"idna", b"undefined", b"x-unknown"])
def test_an_unusable_charset_still_gives_the_text(charset: bytes) -> None:
    raw = b"From: a@kunde.dk\r\nContent-Type: text/plain; charset=" + charset + b"\r\n\r\nhej"
    assert parse(raw).text == "hej"


@pytest.mark.parametrize(
    "subject",
    [
        b"Hej\rBcc: evil@example.net",
        b"=?utf-8?Q?Hej=0D=0ABcc:_evil@example.net?=",
        b"=?utf-8?B?SGVqDQpCY2M6IGV2aWxAZXhhbXBsZS5uZXQ=?=",
        b"Hej =?utf-8?Q?=E2=80=A8Bcc:?= =?utf-8?Q?=C2=85evil@example.net?=",
        b"Hej\r\n Bcc: evil@example.net",
    ],
)
def test_a_subject_is_one_line_whatever_it_smuggles(subject: bytes) -> None:
    mail = parse(b"From: a@kunde.dk\r\nSubject: " + subject + b"\r\n\r\nx")

    assert mail.subject.startswith("Hej")
    assert len(mail.subject.splitlines()) == 1
    assert "\r" not in mail.subject
    assert "\n" not in mail.subject


def test_invalid_utf8_in_headers_is_replaced_not_kept() -> None:
    mail = parse(HOSTILE["invalid utf-8 in headers"])

    assert mail.subject.startswith("caf\ufffd")
    assert mail.subject.endswith("lone surrogate")


def test_unclosed_head_does_not_hide_the_body() -> None:
    """`</head>` is optional in HTML; the text after <body> is the message."""
    html = "<html><head><meta charset=utf-8><title>x</title><body><p>Skærmen er sort</p>"
    assert html_to_text(html) == "Skærmen er sort"


def test_inline_markup_keeps_its_spaces() -> None:
    assert html_to_text("<p>Printeren <b>virker</b> <i>ikke</i>, se <a href=x>her</a>.</p>") == (
        "Printeren virker ikke, se her."
    )


@st.composite
def mail_like(draw: st.DrawFn) -> bytes:
    """Bytes that look enough like mail to reach the MIME, header and charset code."""
    fragments = st.sampled_from(
        [
            b"From: ",
            b"Subject: ",
            b"=?utf-8?q?",
            b"=?iso-8859-1?b?",
            b"?=",
            b"Content-Type: multipart/mixed; boundary=b\r\n",
            b"Content-Type: text/html; charset=",
            b"Content-Type: message/rfc822\r\n",
            b"Content-Transfer-Encoding: quoted-printable\r\n",
            b"Content-Transfer-Encoding: base64\r\n",
            b"Content-Disposition: attachment; filename*=utf-8''",
            b"In-Reply-To: <",
            b"Date: ",
            b"\r\n--b\r\n",
            b"\r\n--b--\r\n",
            b"\r\n\r\n",
            b"<p>",
            b"<script>",
            b"(",
            b">",
            b"\xff\xfe",
            b"=E6",
        ]
    )
    pieces = draw(st.lists(st.one_of(fragments, st.binary(max_size=20)), max_size=40))
    return b"".join(pieces)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=2000), mail_like()))
def test_parse_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    assert_storable(parse(raw))
