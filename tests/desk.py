"""What the end-to-end tests do at the desk again and again: an agreement registered and
seen by the gateway, a phone call for Z Premium."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from tests.conftest import StackFactory, metric_value
from tests.test_fault_tolerance import Z_PREMIUM, register

from servicedesk_contracts import topics
from servicedesk_stack.demo import DEMO_AGREEMENTS
from servicedesk_stack.stack import Stack
from servicedesk_stack.waiting import wait_for

AGENT = {"Authorization": "Bearer agent-token"}


def agreement_in_view(bootstrap: str, gateway: str, agreement_id: uuid.UUID) -> None:
    """Registers a demo agreement on the billing-commands topic and waits until the
    gateway's view has it."""
    register(bootstrap, agreement_id, DEMO_AGREEMENTS[agreement_id]())
    wait_for(
        lambda: httpx.get(f"{gateway}/agreements/{agreement_id}", headers=AGENT).is_success,
        60,
        "the agreement in the gateway's view",
    )


def running_desk(make_stack: StackFactory) -> tuple[Stack, str]:
    """A started stack whose gateway knows Z Premium: (the stack, the gateway's URL)."""
    stack = make_stack()
    stack.start()
    stack.wait_ready()
    gateway = f"http://127.0.0.1:{stack.config.gateway_port}"
    agreement_in_view(stack.config.bootstrap, gateway, Z_PREMIUM)
    return stack, gateway


def phone_call(**changes: Any) -> dict[str, Any]:
    """A Z Premium customer's call: impact high x urgency high, P1."""
    return {
        "agreement_id": str(Z_PREMIUM),
        "channel": "phone",
        "reporter_email": "ops@nordlicht.de",
        "reporter_name": "Jana",
        "organisation": "Nordlicht GmbH",
        "subject": "Backups failing",
        "body": "Every nightly job fails",
        "category": "incident",
        "impact": "high",
        "urgency": "high",
        **changes,
    }


def intake_knows_agreements(intake_port: int, count: int = 1) -> None:
    """Waits until intake has applied `count` agreements (their mail domains): mail from
    their customers finds them from then on."""
    wait_for(
        lambda: (
            metric_value(
                intake_port, "servicedesk_messages_consumed_total", topic=topics.AGREEMENTS
            )
            >= count
        ),
        60,
        "intake to learn the agreement (its mail domains)",
    )


def mail_agreement(impact: str = "high", urgency: str = "high") -> dict[str, Any]:
    """Nordlicht on a 24x7 P1-P4 agreement (4 h response for every priority) that takes
    mail from nordlicht.de, triaged as `impact` x `urgency`."""
    return {
        "customer": "Nordlicht GmbH",
        "plan": "24x7 test plan",
        "calendar": {"timezone": "Europe/Berlin", "always_open": True},
        "matrix": "Z-P1P4",
        "targets": {p: {"response_minutes": 240} for p in ("P1", "P2", "P3", "P4")},
        "billing": {"model": "monthly_invoice", "hourly_rate_cents": 12000, "vat_rate": "0.19"},
        "mail": {"email_domains": ["nordlicht.de"], "impact": impact, "urgency": urgency},
    }
