"""Composition root of intake."""

from __future__ import annotations

import asyncio

from servicedesk_contracts import topics
from servicedesk_intake.application import Intake
from servicedesk_intake.config import IntakeSettings
from servicedesk_intake.domain import ReferenceSequence
from servicedesk_intake.imap_poller import ImapConfig, ImapPoller
from servicedesk_intake.keeper import MailKeeper
from servicedesk_intake.mail_desk import MailDesk, MailPolicy
from servicedesk_intake.smtp_listener import ListenerConfig, MailListener
from servicedesk_intake.translate import translate
from servicedesk_runtime.blobs import BlobStore
from servicedesk_runtime.clock import Clock, SystemClock
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.relay import LogPositions
from servicedesk_runtime.service import BackgroundLoop, Service
from servicedesk_runtime.settings import from_environment
from servicedesk_runtime.snapshots import snapshot_if_behind

NAME = "intake"
log = get_logger(__name__)


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
    await asyncio.to_thread(_snapshot_sequence, service)
    await service.run(
        topics=[topics.INBOUND, topics.AGREEMENTS],
        handlers=handlers,
        translate=translate,
        loops=_mail_in(service, settings, blobs),
    )


def _snapshot_sequence(service: Service) -> None:
    """A store written before the sequence was snapshotted replays it whole once, here,
    and is snapshotted, so that later starts read little. Only speed is at stake: a
    database not reachable yet is the consumer's to wait for."""
    try:
        snapshot_if_behind(service.store, ReferenceSequence.ID, ReferenceSequence.SNAPSHOT_EVERY)
    except Exception:
        log.exception("sequence_snapshot_failed")


def _mail_in(service: Service, settings: IntakeSettings, blobs: BlobStore) -> list[BackgroundLoop]:
    """The SMTP listener and the IMAP poller, each when configured."""
    loops: list[BackgroundLoop] = []
    if settings.mail_port is not None:
        config = ListenerConfig(
            host=settings.mail_host,
            port=settings.mail_port,
            addresses=settings.support_addresses,
            max_bytes=settings.mail_max_bytes,
        )
        listener = MailListener(service.store, blobs, service.clock, config, service.wake_relay)
        loops.append(listener.run)
    if settings.imap_host:
        imap = ImapConfig(
            host=settings.imap_host,
            port=settings.imap_port,
            user=settings.imap_user,
            password=settings.imap_password,
            folder=settings.imap_folder,
            ssl=settings.imap_ssl,
            poll_seconds=settings.imap_poll_seconds,
        )
        keeper = MailKeeper(service.store, blobs)
        positions = LogPositions(service.database, "intake_imap_position")
        poller = ImapPoller(keeper, positions, service.clock, imap, service.wake_relay)
        loops.append(poller.run)
    return loops


def main() -> None:
    asyncio.run(run(from_environment(IntakeSettings, NAME)))
