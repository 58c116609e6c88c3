"""Composition root of intake."""

from __future__ import annotations

import asyncio

from servicedesk_contracts import topics
from servicedesk_intake.application import Intake
from servicedesk_intake.config import IntakeSettings
from servicedesk_intake.mail_desk import MailDesk, MailPolicy
from servicedesk_intake.smtp_listener import ListenerConfig, MailListener
from servicedesk_intake.translate import translate
from servicedesk_runtime.blobs import BlobStore
from servicedesk_runtime.clock import Clock, SystemClock
from servicedesk_runtime.service import BackgroundLoop, Service

NAME = "intake"


async def run(settings: IntakeSettings, clock: Clock | None = None) -> None:
    clock = clock or SystemClock()
    service = Service(NAME, settings, clock)
    blobs = BlobStore(settings.blob_dir)
    policy = MailPolicy(
        our_domain=settings.our_domain,
        default_agreement=settings.mail_default_agreement,
        per_sender_per_hour=settings.mail_per_sender_per_hour,
    )
    handlers = {**Intake(clock).handlers(), **MailDesk(blobs, policy).handlers()}
    await service.run(
        topics=[topics.INBOUND, topics.AGREEMENTS],
        handlers=handlers,
        translate=translate,
        loops=_listener(service, settings, blobs),
    )


def _listener(service: Service, settings: IntakeSettings, blobs: BlobStore) -> list[BackgroundLoop]:
    if settings.mail_port is None:
        return []
    config = ListenerConfig(
        host=settings.mail_host,
        port=settings.mail_port,
        addresses=settings.support_addresses,
        max_bytes=settings.mail_max_bytes,
    )
    return [MailListener(service.store, blobs, service.clock, config, service.wake_relay).run]


def main() -> None:
    asyncio.run(run(IntakeSettings()))
