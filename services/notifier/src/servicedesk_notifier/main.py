"""Composition root of notifier."""

from __future__ import annotations

import asyncio

from servicedesk_contracts import topics
from servicedesk_notifier.application import Notifier
from servicedesk_notifier.config import NotifierSettings
from servicedesk_notifier.dispatch import Dispatcher, RetryPolicy
from servicedesk_notifier.dispatch_log import DispatchLog
from servicedesk_notifier.smtp import SmtpMailer
from servicedesk_notifier.translate import translate
from servicedesk_runtime.service import Service
from servicedesk_runtime.settings import from_environment

NAME = "notifier"


def dispatcher_for(service: Service, settings: NotifierSettings) -> Dispatcher:
    return Dispatcher(
        store=service.store,
        log=DispatchLog(service.database),
        mailer=SmtpMailer(settings.smtp_host, settings.smtp_port, settings.mail_from),
        policy=RetryPolicy(
            attempts=settings.smtp_retry_attempts,
            give_up_after_seconds=settings.smtp_retry_for_seconds,
            max_wait_seconds=settings.smtp_retry_max_wait_seconds,
        ),
        poll_interval=settings.poll_interval_seconds,
        on_recorded=service.wake_relay,
    )


async def run(settings: NotifierSettings) -> None:
    service = Service(NAME, settings)
    dispatcher = dispatcher_for(service, settings)
    service.on_commit(dispatcher.wake)
    await service.run(
        topics=[topics.TICKETS, topics.SLA, topics.AGREEMENTS, topics.NOTIFIER_COMMANDS],
        handlers=Notifier(settings.alert_email).handlers(),
        translate=translate,
        loops=[dispatcher.run],
    )


def main() -> None:
    asyncio.run(run(from_environment(NotifierSettings, NAME)))
