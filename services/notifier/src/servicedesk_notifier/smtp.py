"""Mail over SMTP (the adapter): building a delivery's mail and handing it to the server."""

from __future__ import annotations

import functools
import smtplib
import sys
import threading
import time
from collections.abc import Callable
from email.header import Header
from email.headerregistry import AddressHeader, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import formatdate
from typing import Any

from servicedesk_notifier.domain import Notification

KIND_HEADER = "X-Servicedesk-Kind"
"""Names the notification's kind (ticket_confirmation, agent_reply, sla_breach...)."""


class Unsendable(Exception):
    """This mail can never be sent as it is (a header the email package refuses, a
    recipient or sender the server refuses for good): record it as failed, do not retry."""


class _KeptHeaderClasses(HeaderRegistry):
    """The email package's header registry, keeping the class it makes for each header
    name: the registry makes a new class (`type(...)`) every time a header is set or
    counted, which was a fifth of the dispatcher's CPU. The classes hold no state."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(key)
        return made


_PRINTABLE_ASCII = frozenset(map(chr, range(0x20, 0x7F)))


class _MailPolicy(EmailPolicy):
    """The email package's default policy (RFC 5322, encoded words for non-ASCII), with
    two changes to how headers are written out:

    - A header whose value is printable ASCII and fits on its line is written as it is,
      which is what folding it makes of it (a test compares the two on generated
      headers). Folding goes through the header's parse tree, and that was half the CPU
      of sending a mail.
    - A free-text header (Subject) with non-ASCII text is written as encoded words only,
      whole. The package's folder mixes plain and encoded words and loses whitespace on
      the way: "ordrer, Søren" after an en dash reads back without its space (the space
      between two encoded words does not count), and a fold before an encoded word
      doubles a space.
      A property test reads every subject back exactly."""

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        """The header object for a value set on a mail, parsed once per name and text
        (`_parsed`): the sender, the kind, Auto-Submitted and the Date of the current
        second are the same for every mail, and parsing was a fifth of the notifier's CPU."""
        if isinstance(value, str) and not hasattr(value, "name"):
            return _parsed(self, name, value)
        return super().header_store_parse(name, value)

    def fold(self, name: str, value: Any) -> str:
        written = self._as_it_is(name, value) or self._encoded_whole(name, value)
        return super().fold(name, value) if written is None else written

    def fold_binary(self, name: str, value: Any) -> bytes:
        written = self._as_it_is(name, value) or self._encoded_whole(name, value)
        return super().fold_binary(name, value) if written is None else written.encode()

    def _as_it_is(self, name: str, value: Any) -> str | None:
        """The header's line when it needs no folding and no encoding, else None. Only
        for header objects (every header we set is one) other than address lists, whose
        written form normalises what their text shows ("<>" is written ";")."""
        if not hasattr(value, "name") or isinstance(value, AddressHeader):
            return None
        text = str(value)
        fits = len(name) + 2 + len(text) < (self.max_line_length or sys.maxsize)
        if text and fits and text.strip() == text and _PRINTABLE_ASCII.issuperset(text):
            return f"{name}: {text}{self.linesep}"
        return None

    def _encoded_whole(self, name: str, value: Any) -> str | None:
        """A free-text header with non-ASCII text, as folded UTF-8 encoded words, else
        None. Not for a policy that may write UTF-8 as it is (SMTPUTF8)."""
        if self.utf8 or not isinstance(value, UnstructuredHeader):
            return None
        text = str(value)
        if text.isascii():
            return None
        words = Header(text, "utf-8", maxlinelen=self.max_line_length, header_name=name)
        return f"{name}: {words.encode(linesep=self.linesep)}{self.linesep}"


@functools.lru_cache(maxsize=1024)
def _parsed(policy: _MailPolicy, name: str, value: str) -> tuple[str, Any]:
    """Header objects are never changed once made, so one may sit in many mails."""
    return EmailPolicy.header_store_parse(policy, name, value)  # type: ignore[no-any-return]


MAIL_POLICY = _MailPolicy(header_factory=_KeptHeaderClasses())
"""How our mails are built and written (see `_KeptHeaderClasses`, `_MailPolicy`)."""


def build_mail(notification: Notification, sender: str, message_id: str) -> EmailMessage:
    """The mail for a notification, built by the email package. No header is ever split:
    a value with a line break anywhere (CR, LF, U+2028...) makes the mail unsendable. The
    package's own check misses one at the end of an address, which would end the header
    block early and turn the remaining headers into body."""
    headers = {
        "From": sender,
        "To": notification.recipient,
        "Subject": notification.subject_line,
        "Date": formatdate(usegmt=True),
        "Message-ID": message_id,
        # What the mail is, whatever language it is in: for mail filters and for counting.
        KIND_HEADER: notification.kind,
        **notification.headers,
    }
    mail = EmailMessage(policy=MAIL_POLICY)
    try:
        for name, value in headers.items():
            if value.splitlines() not in ([], [value]):  # "" has no lines
                raise ValueError(f"{name} {value!r} contains a line break")
            mail[name] = value
        mail.set_content(notification.body)
    except Exception as refused:  # the email package also fails on garbage with
        # IndexError or AttributeError: this mail's fault, never the dispatch round's
        raise Unsendable(f"cannot build the mail: {type(refused).__name__}: {refused}") from refused
    return mail


def is_transient(error: BaseException) -> bool:
    """Worth trying again later: the server is away or busy (connection errors, 4xx)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500
    # Disconnects, timeouts, refused connections (SMTPServerDisconnected is an OSError).
    return isinstance(error, OSError | smtplib.SMTPException)


def _ended_by_server(error: BaseException) -> bool:
    """The server closed the session (an idle timeout, a restart, 421 "closing"): a new
    connection may well take the mail at once."""
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return any(code == 421 for code, _ in error.recipients.values())
    return isinstance(error, smtplib.SMTPResponseException) and error.smtp_code == 421


class SmtpMailer:
    """Sends every mail over one SMTP connection, opened for the first and kept while mail
    flows: a connection (TCP, greeting, EHLO, QUIT) per mail cost more than the mail.

    A kept connection may have been ended by the server meanwhile; the first command on it
    then fails with nothing accepted, so the mail goes again at once over a new connection
    rather than waiting for the dispatcher's backoff. Any other error closes the
    connection too (its state is unknown) and is raised as before: the dispatcher retries
    or fails the delivery exactly as with a connection per mail. Thread-safe; sends are
    serialised (one SMTP session carries one mail at a time)."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        timeout: float = 10,
        idle_seconds: float = 30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout = timeout
        self.idle_seconds = idle_seconds
        """A connection unused this long is closed (servers end idle ones after minutes)."""
        self._clock = clock
        self._server: smtplib.SMTP | None = None
        self._last_used = 0.0
        self._lock = threading.Lock()

    @property
    def domain(self) -> str:
        """Our domain, in every Message-ID we make (intake knows our mail by it)."""
        return self.sender.rsplit("@", 1)[-1].strip(">").lower()

    def send(self, mail: EmailMessage) -> None:
        """Raises `OSError` / `smtplib.SMTPException` when the server refuses or is away."""
        with self._lock:
            kept = self._server is not None
            try:
                self._send_once(mail)
            except (OSError, smtplib.SMTPException) as error:
                if not (kept and _ended_by_server(error)):
                    raise
                # Ended while kept: a repeat is only possible if the server ended it after
                # taking the mail's data, and then it carries the same Message-ID.
                self._send_once(mail)
            self._last_used = self._clock()

    @property
    def idle(self) -> bool:
        """Connected, and unused for `idle_seconds`."""
        return self._server is not None and self._clock() - self._last_used >= self.idle_seconds

    def close(self) -> None:
        """Ends the session politely (QUIT); never raises."""
        with self._lock:
            self._close()

    def _send_once(self, mail: EmailMessage) -> None:
        if self._server is None:
            self._server = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            self._server.send_message(mail)
        except BaseException:
            self._close()
            raise

    def _close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        try:
            server.quit()
        except (OSError, smtplib.SMTPException):
            server.close()  # the server is gone already: only the socket is left to free
