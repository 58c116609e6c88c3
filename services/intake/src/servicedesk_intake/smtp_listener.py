"""The desk's SMTP listener (aiosmtpd): mail for the support addresses becomes an event
before the sender hears 250.

On DATA the raw message is written to the blob store (flushed to disk) and an
`InboundMail.Received` event is committed to intake's event store; only then does the
listener answer `250`. A crash after that loses nothing: the relay publishes the stored
mail as `ReceiveMail` and intake decides it. A crash before it loses nothing either: the
sender got no 250 and tries again. When the store cannot be written (a lost database) the
answer is `451`, which tells the sending server to retry later. The same Message-ID again
is answered 250 and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from aiosmtpd.smtp import SMTP, Envelope, Session

from servicedesk_intake.keeper import MailKeeper
from servicedesk_runtime.blobs import BlobStore
from servicedesk_runtime.clock import Clock
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.metrics import MAILS_RECEIVED
from servicedesk_runtime.store import ServiceStore

log = get_logger(__name__)


@dataclass(frozen=True)
class ListenerConfig:
    host: str
    port: int
    addresses: frozenset[str]
    """The support addresses mail is accepted for (lower case); others get 550."""
    max_bytes: int
    hostname: str = "servicedesk"


class _Keeper:
    """aiosmtpd's handler: checks recipients, stores what arrives."""

    def __init__(
        self,
        keeper: MailKeeper,
        clock: Clock,
        config: ListenerConfig,
        on_stored: Callable[[], None],
    ) -> None:
        self.keeper = keeper
        self.clock = clock
        self.config = config
        self.on_stored = on_stored

    async def handle_RCPT(  # noqa: N802  aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.lower() not in self.config.addresses:
            MAILS_RECEIVED.labels("refused_recipient").inc()
            return f"550 5.1.1 <{address}>: no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        raw = envelope.original_content or b""
        try:
            stored = await asyncio.to_thread(self.keep, raw, envelope)
        except Exception:
            log.exception("mail_not_stored", size=len(raw))
            MAILS_RECEIVED.labels("deferred").inc()
            return "451 4.3.0 The message could not be stored now; please try again later"
        if stored:
            self.on_stored()
        return "250 2.0.0 OK: message stored"

    def keep(self, raw: bytes, envelope: Envelope) -> bool:
        return self.keeper.keep(
            raw,
            source="smtp",
            envelope_from=envelope.mail_from or "",
            envelope_to=list(envelope.rcpt_tos),
            received_at=self.clock.now(),
        )


class MailListener:
    def __init__(
        self,
        store: ServiceStore,
        blobs: BlobStore,
        clock: Clock,
        config: ListenerConfig,
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self._keeper = _Keeper(MailKeeper(store, blobs), clock, config, on_stored)
        self.port: int | None = None
        self.listening = asyncio.Event()

    def _protocol(self) -> SMTP:
        return SMTP(
            self._keeper,
            data_size_limit=self.config.max_bytes,
            hostname=self.config.hostname,
            ident="servicedesk intake",
        )

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(self._protocol, self.config.host, self.config.port)
        self.port = server.sockets[0].getsockname()[1]
        self.listening.set()
        log.info("mail_listening", host=self.config.host, port=self.port)
        try:
            await stop.wait()
        finally:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()
