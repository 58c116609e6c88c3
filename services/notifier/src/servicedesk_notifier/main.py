"""Composition root of notifier."""

from __future__ import annotations

import asyncio

from servicedesk_contracts import topics
from servicedesk_notifier.application import Notifier
from servicedesk_notifier.config import NotifierSettings
from servicedesk_notifier.smtp import SmtpMailer
from servicedesk_notifier.translate import translate
from servicedesk_runtime.service import Service

NAME = "notifier"


async def run(settings: NotifierSettings) -> None:
    service = Service(NAME, settings)
    mailer = SmtpMailer(settings.smtp_host, settings.smtp_port, settings.mail_from)
    await service.run(
        topics=[topics.TICKETS, topics.SLA],
        handlers=Notifier(mailer, settings.alert_email).handlers(),
        translate=translate,
    )


def main() -> None:
    asyncio.run(run(NotifierSettings()))
