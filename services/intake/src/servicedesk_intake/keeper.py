"""Keeping a received mail: its raw bytes in the blob store, then `InboundMail.Received` in
intake's event store. Shared by the SMTP listener and the IMAP poller: whoever received
the mail may acknowledge it (250, advancing past its UID) only after `keep` returned."""

from __future__ import annotations

from datetime import datetime

from eventsourcing.persistence import IntegrityError

from servicedesk_intake.inbox import InboundMail
from servicedesk_intake.mail import message_id_of
from servicedesk_runtime.blobs import BlobStore
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.metrics import MAILS_RECEIVED
from servicedesk_runtime.store import ServiceStore

log = get_logger(__name__)


class MailKeeper:
    def __init__(self, store: ServiceStore, blobs: BlobStore) -> None:
        self.store = store
        self.blobs = blobs

    def keep(
        self,
        raw: bytes,
        *,
        source: str,
        envelope_from: str,
        envelope_to: list[str],
        received_at: datetime,
    ) -> bool:
        """Stores the mail durably; False when a mail with its Message-ID (or, without
        one, its content) was stored before."""
        message_id = message_id_of(raw)
        sha256 = self.blobs.put(raw)
        mail = InboundMail(
            message_id=message_id,
            sha256=sha256,
            size=len(raw),
            source=source,
            envelope_from=envelope_from,
            envelope_to=envelope_to,
            received_at=received_at,
        )
        if mail.id in self.store.repository:
            MAILS_RECEIVED.labels("duplicate").inc()
            return False
        try:
            self.store.save(mail)
        except IntegrityError:  # stored by a replica in between
            MAILS_RECEIVED.labels("duplicate").inc()
            return False
        MAILS_RECEIVED.labels("stored").inc()
        log.info("mail_stored", mail_id=str(mail.id), source=source, size=len(raw))
        return True
