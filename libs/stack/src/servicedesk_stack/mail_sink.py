"""A local SMTP server that keeps what it receives (aiosmtpd): the embedded run's and the
tests' mail catcher."""

from __future__ import annotations

import threading
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class _Keeper:
    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.messages: list[Message] = []
        self.refused: set[str] = set()
        self._lock = threading.Lock()
        # Files are numbered on from what earlier runs left, never over them.
        self._last_number = (
            max((int(p.stem) for p in folder.glob("*.eml") if p.stem.isdigit()), default=0)
            if folder is not None and folder.exists()
            else 0
        )

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() in self.refused:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        content = envelope.original_content or b""
        mail = message_from_bytes(content)
        with self._lock:
            self.messages.append(mail)
            self._last_number += 1
            number = self._last_number
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{number:06d}.eml").write_bytes(content)
        return "250 Message accepted for delivery"


class MailSink:
    def __init__(self, port: int, folder: Path | None = None) -> None:
        self.port = port
        self._keeper = _Keeper(folder)
        self._controller = Controller(self._keeper, hostname="127.0.0.1", port=port)

    @property
    def messages(self) -> list[Message]:
        return list(self._keeper.messages)

    def subjects(self) -> list[str]:
        return [str(mail["Subject"]) for mail in self.messages]

    def refuse(self, address: str) -> None:
        """Mail to `address` is refused for good (550), as for a mailbox that does not exist."""
        self._keeper.refused.add(address.lower())

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> MailSink:
        self.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()
