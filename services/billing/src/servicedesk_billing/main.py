"""Composition root of billing."""

from __future__ import annotations

import asyncio

from servicedesk_billing.application import Billing
from servicedesk_billing.config import BillingSettings
from servicedesk_billing.translate import translate
from servicedesk_contracts import topics
from servicedesk_runtime.clock import Clock
from servicedesk_runtime.service import Service
from servicedesk_runtime.settings import from_environment

NAME = "billing"


async def run(settings: BillingSettings, clock: Clock | None = None) -> None:
    service = Service(NAME, settings, clock)
    await service.run(
        topics=[topics.BILLING_COMMANDS, topics.TICKETS],
        handlers=Billing(service.clock).handlers(),
        translate=translate,
    )


def main() -> None:
    asyncio.run(run(from_environment(BillingSettings, NAME)))
