"""Composition root of intake."""

from __future__ import annotations

import asyncio

from servicedesk_contracts import topics
from servicedesk_intake.application import Intake
from servicedesk_intake.config import IntakeSettings
from servicedesk_intake.translate import translate
from servicedesk_runtime.clock import Clock, SystemClock
from servicedesk_runtime.service import Service

NAME = "intake"


async def run(settings: IntakeSettings, clock: Clock | None = None) -> None:
    clock = clock or SystemClock()
    service = Service(NAME, settings, clock)
    await service.run(
        topics=[topics.INBOUND], handlers=Intake(clock).handlers(), translate=translate
    )


def main() -> None:
    asyncio.run(run(IntakeSettings()))
