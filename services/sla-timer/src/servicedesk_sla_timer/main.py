"""Composition root of sla-timer."""

from __future__ import annotations

import asyncio

from servicedesk_contracts import topics
from servicedesk_runtime.clock import Clock, SystemClock
from servicedesk_runtime.service import Service
from servicedesk_runtime.settings import from_environment
from servicedesk_sla_timer.application import SlaTimer
from servicedesk_sla_timer.config import SlaTimerSettings
from servicedesk_sla_timer.due_timers import DueTimers
from servicedesk_sla_timer.translate import translate

NAME = "sla-timer"


async def run(settings: SlaTimerSettings, clock: Clock | None = None) -> None:
    clock = clock or SystemClock()
    service = Service(NAME, settings, clock)
    timer = SlaTimer(service.store, DueTimers(service.database, service.store), clock)
    service.on_commit(timer.clocks_changed)
    await service.run(
        topics=[topics.TRIAGE, topics.TICKETS, topics.AGREEMENTS],
        handlers=timer.handlers(),
        translate=translate,
        loops=[timer.timer_loop(settings.timer_interval_seconds, service.wake_relay)],
    )


def main() -> None:
    asyncio.run(run(from_environment(SlaTimerSettings, NAME)))
