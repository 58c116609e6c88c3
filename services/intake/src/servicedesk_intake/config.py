"""Intake's settings: the common ones, and the mail listener's."""

import uuid

from pydantic import Field

from servicedesk_runtime.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    http_port: int = 9101
    mail_port: int | None = None
    """The SMTP listener's port (the embedded run: 2525); None: no listener."""
    mail_host: str = "127.0.0.1"
    mail_from: str = "servicedesk@example.com"
    """The desk's own address: mail to it is accepted, and its domain marks our mail."""
    mail_addresses: str = ""
    """More support addresses to accept mail for, comma-separated."""
    mail_max_bytes: int = Field(default=30 * 1024 * 1024, ge=1024)
    """Larger mails are refused in the SMTP dialogue (552)."""
    mail_default_agreement: uuid.UUID | None = None
    """Where mail from an unknown sender goes; None: set aside as unmatched (visible)."""
    mail_per_sender_per_hour: int = Field(default=30, ge=1)

    @property
    def support_addresses(self) -> frozenset[str]:
        extra = (a.strip() for a in self.mail_addresses.split(","))
        return frozenset(a.lower() for a in (self.mail_from, *extra) if a)

    @property
    def our_domain(self) -> str:
        return self.mail_from.rsplit("@", 1)[-1].lower()

    imap_host: str = ""
    """A mailbox elsewhere to poll (IMAP); empty: no poller."""
    imap_port: int = 993
    imap_user: str = ""
    imap_password: str = ""
    imap_folder: str = "INBOX"
    imap_ssl: bool = True
    imap_poll_seconds: float = Field(default=60, gt=0)
