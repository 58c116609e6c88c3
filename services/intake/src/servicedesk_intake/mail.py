"""Reading a received mail (pure: bytes in, facts out, no I/O).

Parsed with the standard library's `email` package and its `default` policy, which decodes
encoded headers (a quoted-printable Danish subject) and content transfer encodings. What a
ticket needs is taken out: sender, subject, the new text (HTML-only mail turned into text,
quoted history trimmed; the raw record keeps all of it), attachments, threading headers,
and whether the mail was sent by a machine (which must never open a ticket or be answered).
Mail is untrusted: nothing here raises on a malformed message.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

REFERENCE = re.compile(r"\[\s*(SD-\d{6,})\s*\]", re.IGNORECASE)
"""The ticket reference in a subject, anywhere in it (after Re:, AW:, SV:, Antw:, Fwd:...)."""
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,900}>")
_SUBJECT_PREFIX = re.compile(r"^\s*((re|aw|sv|antw|fwd?|wg|vs|tr)\s*(\[\d+\])?\s*:\s*)+", re.I)
MAX_BODY_CHARS = 20_000
"""A ticket message's text is cut here (the whole mail stays in the raw record)."""
TOO_DEEP = "RecursionError"
"""The defect of a mail nested (MIME parts, header comments) deeper than Python's stack."""


@dataclass(frozen=True)
class MailFile:
    """An attachment with its content (stored as a blob, recorded by hash)."""

    filename: str
    content_type: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class ParsedMail:
    sender_email: str | None
    sender_name: str
    subject: str
    text: str
    """The new text of the message, without quoted history."""
    quoted: str
    """The history trimmed from `text` (kept for the record)."""
    message_id: str | None
    in_reply_to: list[str]
    references: list[str]
    date: datetime | None
    attachments: list[MailFile] = field(default_factory=list)
    automatic: str | None = None
    """Why the mail was sent by a machine (a bounce, an out-of-office, a list), or None."""
    defects: list[str] = field(default_factory=list)

    @property
    def reference(self) -> str | None:
        """The ticket reference named in the subject, upper case."""
        found = REFERENCE.search(self.subject)
        return found.group(1).upper() if found else None

    @property
    def related_ids(self) -> list[str]:
        """Message-IDs this mail answers, the most direct first."""
        return list(dict.fromkeys([*self.in_reply_to, *reversed(self.references)]))

    @property
    def bare_subject(self) -> str:
        """The subject without reply prefixes or our reference: a new ticket's subject."""
        subject = REFERENCE.sub(" ", _SUBJECT_PREFIX.sub("", self.subject))
        return " ".join(subject.split()) or "(no subject)"


def parse(raw: bytes) -> ParsedMail:
    # The standard parser recurses once per MIME level and per nested header comment, so a
    # few kilobytes of hostile nesting exhaust the stack: then the headers alone are read
    # (the body stays in the raw record), and if even they are too deep, nothing is.
    try:
        return _read(_message(raw, headers_only=False))
    except RecursionError:
        pass
    try:
        return replace(_read(_message(raw, headers_only=True)), defects=[TOO_DEEP])
    except RecursionError:
        return ParsedMail(
            sender_email=None,
            sender_name="",
            subject="",
            text="",
            quoted="",
            message_id=None,
            in_reply_to=[],
            references=[],
            date=None,
            defects=[TOO_DEEP],
        )


def _message(raw: bytes, *, headers_only: bool) -> EmailMessage:
    mail = BytesParser(policy=policy.default).parsebytes(raw, headersonly=headers_only)
    assert isinstance(mail, EmailMessage)  # the default policy's message class
    return mail


def _read(mail: EmailMessage) -> ParsedMail:
    sender_name, sender_email = _sender(mail)
    text, quoted = split_quoted(_body_text(mail))
    return ParsedMail(
        sender_email=sender_email,
        sender_name=sender_name,
        subject=_header(mail, "Subject"),
        text=text[:MAX_BODY_CHARS],
        quoted=quoted,
        message_id=_first_id(_header(mail, "Message-ID")),
        in_reply_to=_ids(_header(mail, "In-Reply-To")),
        references=_ids(_header(mail, "References")),
        date=_date(_header(mail, "Date")),
        attachments=list(_attachments(mail)),
        automatic=automatic_reason(mail),
        defects=[type(defect).__name__ for defect in mail.defects],
    )


def message_id_of(raw: bytes) -> str | None:
    """The Message-ID from the headers alone (the listener's quick look)."""
    try:
        headers = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
    except Exception:  # headers beyond repair: the mail is known by its content
        return None
    return _first_id(_header(headers, "Message-ID"))


def _header(mail: Message, name: str) -> str:
    """A header's decoded value as one line; '' when absent or beyond repair."""
    try:
        value = mail.get(name)
    except Exception:  # a header the policy cannot parse is as good as absent
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def _sender(mail: Message) -> tuple[str, str | None]:
    """(display name, address) of From (Reply-To is not trusted to pick the agreement)."""
    raw_from = _header(mail, "From")
    for name, address in getaddresses([raw_from]):
        if "@" in address and not any(c.isspace() for c in address):
            return name.strip(), address.lower()
    return "", None


def _ids(value: str) -> list[str]:
    return _MESSAGE_ID.findall(value)


def _first_id(value: str) -> str | None:
    found = _ids(value)
    return found[0] if found else None


def _date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else None


def automatic_reason(mail: Message) -> str | None:
    """Why a mail was sent by a machine (RFC 3834, RFC 3464, list and vendor headers)."""
    for check in _MACHINE_SIGNS:
        reason = check(mail)
        if reason is not None:
            return reason
    return None


def _auto_submitted(mail: Message) -> str | None:
    value = _header(mail, "Auto-Submitted").lower()
    return f"Auto-Submitted: {value}" if value and value.split(";")[0].strip() != "no" else None


def _precedence(mail: Message) -> str | None:
    value = _header(mail, "Precedence").lower()
    return f"Precedence: {value}" if value in {"bulk", "list", "junk"} else None


def _suppressed(mail: Message) -> str | None:
    return "X-Auto-Response-Suppress" if "X-Auto-Response-Suppress" in mail else None


def _list(mail: Message) -> str | None:
    return "a mailing list message" if "List-Id" in mail or "List-Unsubscribe" in mail else None


def _report(mail: Message) -> str | None:
    if mail.get_content_type() != "multipart/report":
        return None
    return f"a delivery report ({mail.get_param('report-type') or 'of unknown type'})"


def _daemon(mail: Message) -> str | None:
    sender = _sender(mail)[1] or ""
    return f"sent by {sender}" if sender.split("@")[0] in {"mailer-daemon", "postmaster"} else None


_MACHINE_SIGNS = (_auto_submitted, _precedence, _suppressed, _list, _report, _daemon)


def _body_text(mail: EmailMessage) -> str:
    """The text of the message: its plain part, else its HTML turned into text."""
    try:
        part = mail.get_body(preferencelist=("plain", "html"))
    except Exception:  # a broken MIME tree has no findable body
        part = None
    if part is None:
        return ""
    content = _content(part)
    if part.get_content_type() == "text/html":
        content = html_to_text(content)
    return content.replace("\r\n", "\n").strip()


def _content(part: Message) -> str:
    """A text part's content; undecodable bytes become U+FFFD, never an error."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except (LookupError, UnicodeError):  # a charset Python does not know, or a codec that
        return payload.decode("utf-8", errors="replace")  # cannot replace (idna, undefined)


def _attachments(mail: EmailMessage) -> list[MailFile]:
    files = []
    for part in mail.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        if disposition != "attachment" and not (disposition == "inline" and filename):
            continue
        content = part.get_payload(decode=True)
        if not isinstance(content, bytes):
            continue
        name = " ".join((filename or "attachment").split())[:300]
        files.append(MailFile(name, part.get_content_type(), content))
    return files


# --- quoted history ------------------------------------------------------------------------

_ATTRIBUTION = re.compile(
    # Gmail, Apple Mail, Thunderbird: "On <date>, <name> wrote:" in English, Danish, Dutch
    # and German (the line often wraps, so two lines are tried together). In Danish, Dutch
    # and German the verb comes before the name ("Den <date> skrev <name> <address>:",
    # "Am <date> schrieb <name>:"). The date's digit is required so that a sentence opening
    # with "Den" or "Am" is not taken for one.
    r"^(On|Den|Op|Am)\s\D{0,300}?\d.{0,300}?"
    r"(\b(wrote|geschrieben)\s*|\b(skrev|schreef|schrieb)\b.{0,300}):$",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(
    # Outlook's separators: "-----Original Message-----" (and translations), or a rule.
    r"^(-{2,}\s*(Original Message|Oprindelig meddelelse|Oorspronkelijk bericht)|_{10,}$)",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^(From|Fra|Van|Von)\s*:", re.IGNORECASE)
_HEADER_SENT = re.compile(r"^(Sent|Date|Sendt|Verzonden|Gesendet|Datum)\s*:", re.IGNORECASE)


def split_quoted(text: str) -> tuple[str, str]:
    """(new text, quoted history): the history starts at the first attribution line, an
    Outlook separator or "From: / Sent:" header block, or a run of `>` lines to the end."""
    lines = [line.strip() for line in text.split("\n")]
    for number, line in enumerate(lines):
        if _starts_history(lines, number, line):
            return _cut(text.split("\n"), number)
    return text.strip(), ""


def _starts_history(lines: list[str], number: int, line: str) -> bool:
    if _ATTRIBUTION.match(line) or _ATTRIBUTION.match(" ".join(lines[number : number + 2])):
        return True
    if _SEPARATOR.match(line):
        return True
    if _HEADER_FROM.match(line) and any(
        _HEADER_SENT.match(n) for n in lines[number + 1 : number + 4]
    ):
        return True
    return line.startswith(">") and all(rest.startswith(">") or not rest for rest in lines[number:])


def _cut(lines: list[str], at: int) -> tuple[str, str]:
    new = "\n".join(lines[:at]).strip()
    if not new:  # everything is quoted (a forward): keep it all as the message
        return "\n".join(lines).strip(), ""
    return new, "\n".join(lines[at:]).strip()


class _TextOfHtml(HTMLParser):
    """HTML to readable text: block elements become line breaks, table cells are spaced,
    scripts and styles go."""

    _BLOCKS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table"})
    _CELLS = frozenset({"td", "th"})
    _HIDDEN = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":  # </head> is optional in HTML: a head left open ends here
            self._hidden = 0
        elif tag in self._HIDDEN:
            self._hidden += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        elif tag in self._CELLS:  # "<td>Navn:</td><td>Jens</td>" reads "Navn: Jens"
            self.parts.append(" ")
        elif tag == "blockquote":
            self.parts.append("\n> ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._hidden = max(self._hidden - 1, 0)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        # Runs of white space become one space but are kept at the edges: in
        # "Printeren <b>virker</b> ikke" the spaces are in the text around the tag
        # (html_to_text trims and collapses each line afterwards).
        if not self._hidden:
            self.parts.append(_WHITE_SPACE.sub(" ", data))


_WHITE_SPACE = re.compile(r"\s+")


def html_to_text(html: str) -> str:
    reader = _TextOfHtml()
    reader.feed(html)
    reader.close()
    lines = (" ".join(line.split()) for line in "".join(reader.parts).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
