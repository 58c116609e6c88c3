"""Composition root of triage."""

from __future__ import annotations

import asyncio

from servicedesk_contracts import topics
from servicedesk_runtime.clock import Clock, SystemClock
from servicedesk_runtime.service import Service
from servicedesk_triage.application import TriageDesk
from servicedesk_triage.config import TriageSettings
from servicedesk_triage.translate import translate

NAME = "triage"


async def run(settings: TriageSettings, clock: Clock | None = None) -> None:
    clock = clock or SystemClock()
    service = Service(NAME, settings, clock)
    await service.run(
        topics=[topics.TICKETS, topics.AGREEMENTS],
        handlers=TriageDesk(clock).handlers(),
        translate=translate,
    )


def main() -> None:
    asyncio.run(run(TriageSettings()))
