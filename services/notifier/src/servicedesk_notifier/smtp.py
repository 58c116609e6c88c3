"""Mail over SMTP (the adapter): building a delivery's mail and handing it to the server."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import formatdate

from servicedesk_notifier.domain import Notification

KIND_HEADER = "X-Servicedesk-Kind"
"""Names the notification's kind (ticket_confirmation, agent_reply, sla_breach...)."""


class Unsendable(Exception):
    """This mail can never be sent as it is (a header the email package refuses, a
    recipient or sender the server refuses for good): record it as failed, do not retry."""


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
    mail = EmailMessage()
    try:
        for name, value in headers.items():
            if value.splitlines() != [value]:
                raise ValueError(f"{name} {value!r} contains a line break")
            mail[name] = value
        mail.set_content(notification.body)
    except (ValueError, TypeError) as refused:
        raise Unsendable(f"cannot build the mail: {refused}") from refused
    return mail


def is_transient(error: BaseException) -> bool:
    """Worth trying again later: the server is away or busy (connection errors, 4xx)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500
    # Disconnects, timeouts, refused connections (SMTPServerDisconnected is an OSError).
    return isinstance(error, OSError | smtplib.SMTPException)


class SmtpMailer:
    def __init__(self, host: str, port: int, sender: str, timeout: float = 10) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout = timeout

    @property
    def domain(self) -> str:
        """Our domain, in every Message-ID we make (intake knows our mail by it)."""
        return self.sender.rsplit("@", 1)[-1].strip(">").lower()

    def send(self, mail: EmailMessage) -> None:
        """Raises `OSError` / `smtplib.SMTPException` when the server refuses or is away."""
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as server:
            server.send_message(mail)
