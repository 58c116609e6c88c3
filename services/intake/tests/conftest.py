"""The mail desk under test: intake's SMTP listener on port 0, its handlers and a real
SQLite event store and blob store (see test_mail_desk.py)."""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from servicedesk_contracts import Message
from servicedesk_contracts import messages as m
from servicedesk_intake.application import Intake
from servicedesk_intake.config import IntakeSettings
from servicedesk_intake.keeper import MailKeeper
from servicedesk_intake.mail_desk import MailDesk, MailPolicy
from servicedesk_intake.smtp_listener import ListenerConfig, MailListener
from servicedesk_intake.translate import translate
from servicedesk_runtime.blobs import BlobStore
from servicedesk_runtime.clock import ManualClock
from servicedesk_runtime.database import DatabaseUrl
from servicedesk_runtime.store import ServiceStore
from servicedesk_stack.demo import provider_v_danish, provider_z_premium

CORPUS = Path(__file__).parents[3] / "tests" / "data" / "mail"

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
DESK = "support@desk.example"
NORDLICHT = uuid.UUID("00000000-0000-4000-8000-00000000000b")
HYGGE = uuid.UUID("00000000-0000-4000-8000-00000000000c")
KUNDE = uuid.UUID("00000000-0000-4000-8000-0000000000dd")


def kunde_terms() -> dict[str, Any]:
    """A Danish customer that takes mail from anyone at kunde.dk."""
    terms = provider_v_danish("Kunde A/S")
    return {
        **terms,
        "mail": {
            **terms["mail"],
            "email_domains": ["kunde.dk"],
            "contacts": [],
            "support_contacts_only": False,
        },
    }


@dataclass
class Desk:
    store: ServiceStore
    blobs: BlobStore
    clock: ManualClock
    handlers: dict[str, Any]
    port: int
    position: int = 0

    @property
    def keeper(self) -> MailKeeper:
        return MailKeeper(self.store, self.blobs)

    def send(self, mail: EmailMessage | bytes, sender: str = "jana@nordlicht.de") -> None:
        # On the wire every line ends in CRLF (smtplib sends bytes as they are).
        raw = mail if isinstance(mail, bytes) else mail.as_bytes(policy=policy.SMTP)
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
            client.sendmail(sender, [DESK], raw)

    def published(self) -> list[tuple[str, Message]]:
        """What the relay would publish since the last call (and feeds intake's own
        ReceiveMail commands to its handler, as the consumer would)."""
        out = []
        while True:
            notifications = self.store.process_recorder.select_notifications(self.position + 1, 100)
            if not notifications:
                return out
            for notification in notifications:
                self.position = notification.id
                routed = translate(self.store.mapper.to_domain_event(notification))
                if routed is not None:
                    out.append(routed)
                    if isinstance(routed[1], m.ReceiveMail):
                        self.apply(routed[1])

    def apply(self, message: Message) -> None:
        uow = self.store.unit_of_work()
        self.handlers[message.event_type](message, uow)
        uow.commit()

    def events(self, kind: type[Message]) -> list[Any]:
        return [message for _, message in self.published() if isinstance(message, kind)]


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    store = ServiceStore(DatabaseUrl.parse(f"sqlite:///{tmp_path}/intake.db", "intake"), "intake")
    blobs = BlobStore(tmp_path / "blobs")
    clock = ManualClock(NOW)
    policy = MailPolicy(our_domain="desk.example", per_sender_per_hour=5)
    handlers = {**Intake(clock).handlers(), **MailDesk(blobs, policy).handlers()}
    config = ListenerConfig(
        "127.0.0.1", 0, frozenset({DESK}), max_bytes=IntakeSettings().mail_max_bytes
    )
    listener = MailListener(store, blobs, clock, config)
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    await listener.listening.wait()
    assert listener.port is not None
    desk = Desk(store, blobs, clock, handlers, listener.port)
    agreements = (
        (NORDLICHT, provider_z_premium()),
        (HYGGE, provider_v_danish()),
        (KUNDE, kunde_terms()),
    )
    for agreement_id, terms in agreements:
        desk.apply(
            m.AgreementRegistered.create(producer="billing", subject_id=agreement_id, data=terms)
        )
    yield desk
    stop.set()
    await task
