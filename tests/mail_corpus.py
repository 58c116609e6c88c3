"""The mail corpus for the parser tests: hand-written `.eml` files in tests/data/mail (shaped
like what Outlook, Gmail, Apple Mail, Exchange, Postfix, Mailman, Thunderbird and a web form
really send), and mails too big to keep in the repository, built on demand."""

from __future__ import annotations

import random
from email import policy
from email.message import EmailMessage
from pathlib import Path

MAIL_DIR = Path(__file__).parent / "data" / "mail"
ATTACHMENT_NAME = "Faktura 2026-1187.pdf"
ATTACHMENT_TYPE = "application/pdf"


def corpus(name: str) -> bytes:
    """The raw bytes of a corpus file, exactly as stored (CRLF or LF as the client wrote)."""
    return (MAIL_DIR / name).read_bytes()


def attachment_content(size_bytes: int) -> bytes:
    """Deterministic PDF-looking bytes of exactly `size_bytes` (a seeded 64 KiB block repeated:
    binary enough to need base64, cheap to build at 20 MB)."""
    block = random.Random(20261123).randbytes(64 * 1024)
    header = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    body = header + block * (size_bytes // len(block) + 1)
    return body[:size_bytes]


def with_attachment(size_bytes: int) -> bytes:
    """An Outlook-shaped mail with a PDF attachment of `size_bytes` (base64 on the wire)."""
    mail = EmailMessage()
    mail["From"] = "Hanne Lund <hanne.lund@kunde.dk>"
    mail["To"] = "Servicedesk <servicedesk@example.com>"
    mail["Subject"] = "Faktura 2026-1187 kan ikke åbnes"
    mail["Date"] = "Thu, 26 Nov 2026 09:30:00 +0100"
    mail["Message-ID"] = "<DB9PR10MB5123A1B2C3D4E5F6@DB9PR10MB5123.EURPRD10.PROD.OUTLOOK.COM>"
    mail["X-Mailer"] = "Microsoft Outlook 16.0"
    mail["Content-Language"] = "da-DK"
    mail.set_content(
        "Hej,\n\nVedhæftet er fakturaen, som vores bogholderi ikke kan åbne.\n"
        "Adobe Reader siger, at filen er beskadiget.\n\nMvh\nHanne Lund\n"
    )
    maintype, subtype = ATTACHMENT_TYPE.split("/")
    mail.add_attachment(
        attachment_content(size_bytes), maintype=maintype, subtype=subtype, filename=ATTACHMENT_NAME
    )
    return mail.as_bytes(policy=policy.SMTP)
