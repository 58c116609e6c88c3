"""Composition root of triage."""

from __future__ import annotations

import asyncio

from servicedesk_contracts import topics
from servicedesk_runtime.clock import Clock, SystemClock
from servicedesk_runtime.service import Service
from servicedesk_runtime.settings import from_environment
from servicedesk_triage.application import TriageDesk
from servicedesk_triage.config import TriageSettings
from servicedesk_triage.translate import translate

NAME = "triage"


async def run(settings: TriageSettings, clock: Clock | None = None) -> None:
    clock = clock or SystemClock()
    service = Service(NAME, settings, clock)
    desk = TriageDesk(clock)
    desk.report_parked(service.store)

    @service.http.get("/parked", tags=["operations"])
    def parked() -> dict[str, dict[str, str]]:
        """Tickets waiting for an agreement triage does not know (yet), by ticket id."""
        return desk.parked(service.store)

    await service.run(
        topics=[topics.TICKETS, topics.AGREEMENTS],
        handlers=desk.handlers(),
        translate=translate,
    )


def main() -> None:
    asyncio.run(run(from_environment(TriageSettings, NAME)))
