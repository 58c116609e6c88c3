"""The IMAP poller: mail from a mailbox that lives elsewhere (off unless IMAP_HOST is set).

Python's own `imaplib`, not imap-tools: the desk keeps each mail byte for byte and starts
its clock at the server's INTERNALDATE, and imap-tools re-parses the message and drops
both. Every round reads the messages past the last UID it kept (per mailbox and
UIDVALIDITY, in intake's database), keeps each mail (`MailKeeper`: blob + event), and only
then moves its position past that UID. So a poller killed between the two reads the mail
again on its next round, and the mail's Message-ID (or content) makes that a no-op. The
message is flagged \\Seen afterwards, for people who look at the mailbox too; it is never
deleted by the desk.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from servicedesk_intake.keeper import MailKeeper
from servicedesk_runtime.clock import Clock
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.metrics import IMAP_POLLS
from servicedesk_runtime.relay import LogPositions

log = get_logger(__name__)


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    user: str
    password: str
    folder: str = "INBOX"
    ssl: bool = True
    poll_seconds: float = 60
    batch_max: int = 100


class ImapPoller:
    def __init__(
        self,
        keeper: MailKeeper,
        positions: LogPositions,
        clock: Clock,
        config: ImapConfig,
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        self.keeper = keeper
        self.positions = positions
        self.clock = clock
        self.config = config
        self.on_stored = on_stored

    async def run(self, stop: asyncio.Event) -> None:
        """Polls until `stop`; a failed round (the server away, a login refused) is logged
        and tried again at the next interval, never ends the loop."""
        while not stop.is_set():
            try:
                kept = await asyncio.to_thread(self.poll_once)
            except Exception as error:  # imaplib raises its own errors and OSError
                log.warning("imap_poll_failed", error=f"{type(error).__name__}: {error}")
                IMAP_POLLS.labels("failed").inc()
                kept = 0
            else:
                IMAP_POLLS.labels("ok").inc()
            if kept:
                self.on_stored()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.config.poll_seconds)

    def poll_once(self) -> int:
        """One round: keeps the mail past the last kept UID; returns how many were new."""
        config = self.config
        connect = imaplib.IMAP4_SSL if config.ssl else imaplib.IMAP4
        with connect(config.host, config.port, timeout=30) as imap:
            imap.login(config.user, config.password)
            _ok(imap.select(_quoted(config.folder)), "SELECT")
            position = f"{config.user}@{config.host}/{config.folder}/{_uidvalidity(imap)}"
            kept = 0
            for uid in self._new_uids(imap, position)[: config.batch_max]:
                kept += self._keep(imap, uid)
                self.positions.set(position, uid)
            return kept

    def _new_uids(self, imap: imaplib.IMAP4, position: str) -> list[int]:
        last = self.positions.get(position)
        data = _ok(imap.uid("SEARCH", f"UID {last + 1}:*"), "UID SEARCH")
        # "n:*" always matches the highest UID, even one at or below n: filter it out.
        return sorted(uid for uid in map(int, (data[0] or b"").split()) if uid > last)

    def _keep(self, imap: imaplib.IMAP4, uid: int) -> int:
        data = _ok(imap.uid("FETCH", str(uid), "(INTERNALDATE BODY.PEEK[])"), "UID FETCH")
        described, raw = next((part for part in data if isinstance(part, tuple)), (b"", b""))
        stored = self.keeper.keep(
            raw,
            source="imap",
            envelope_from="",
            envelope_to=[f"imap:{self.config.user}/{self.config.folder}"],
            received_at=_internal_date(described) or self.clock.now(),
        )
        imap.uid("STORE", str(uid), "+FLAGS", "(\\Seen)")
        return int(stored)


def _ok(answer: tuple[str, list[Any]], what: str) -> list[Any]:
    status, data = answer
    if status != "OK":
        raise imaplib.IMAP4.error(f"{what} answered {status}: {data!r}")
    return [part for part in data if part is not None]


def _uidvalidity(imap: imaplib.IMAP4) -> int:
    """The selected mailbox's UIDVALIDITY (from SELECT's answer): when it changes, UIDs
    start over, and so does the position."""
    for line in imap.response("UIDVALIDITY")[1] or []:
        if isinstance(line, bytes) and line.isdigit():
            return int(line)
    return 0


def _internal_date(described: bytes) -> datetime | None:
    """When the IMAP server received the mail (its INTERNALDATE)."""
    parsed = imaplib.Internaldate2tuple(described)
    return datetime.fromtimestamp(time.mktime(parsed), UTC) if parsed else None


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
