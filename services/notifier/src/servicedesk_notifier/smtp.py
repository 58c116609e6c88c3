"""Sending mail over SMTP (the adapter)."""

from __future__ import annotations

import smtplib
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from servicedesk_notifier.domain import Notification


class SmtpMailer:
    def __init__(self, host: str, port: int, sender: str, timeout: float = 10) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout = timeout

    def send(self, notification: Notification, delivery_id: uuid.UUID) -> None:
        """Raises `OSError` / `smtplib.SMTPException` when the server refuses or is away."""
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = notification.recipient
        mail["Subject"] = notification.subject_line
        mail["Date"] = formatdate(usegmt=True)
        # A stable Message-ID: a resend after a crash is recognisable as the same mail.
        mail["Message-ID"] = make_msgid(idstring=str(delivery_id), domain="servicedesk")
        mail.set_content(notification.body)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as server:
            server.send_message(mail)
