"""A ticket that waits for the customer breaches later by exactly the (business) time it
waited: the real broker, PostgreSQL, and the services as processes."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from tests.conftest import StackFactory, wait_for
from tests.kafka_tools import events_of

from servicedesk_contracts import topics

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ADMIN = {"Authorization": "Bearer admin-token"}
AGENT = {"Authorization": "Bearer agent-token"}
TARGET = timedelta(seconds=7.5)  # 0.125 business minutes: exact in binary floating point


def test_waiting_for_the_customer_moves_the_breach_by_exactly_the_wait(
    make_stack: StackFactory, postgres_url: str
) -> None:
    services = ("intake", "triage", "sla-timer", "billing", "gateway")
    stack = make_stack(postgres_url)
    stack.start(services)
    stack.wait_ready(services)
    gateway = httpx.Client(base_url=f"http://127.0.0.1:{stack.config.gateway_port}", timeout=10)
    bootstrap = stack.config.bootstrap
    terms = {
        "customer": "Nordlicht GmbH",
        "plan": "24x7 test",
        "calendar": {"timezone": "Europe/Berlin", "always_open": True},
        "matrix": "Z-P1P4",
        "targets": {
            p: {"response_minutes": TARGET.total_seconds() / 60} for p in ("P1", "P2", "P3", "P4")
        },
        "paused_statuses": ["awaiting_reply"],
        "warning_thresholds": [],
        "billing": {"model": "monthly_invoice", "hourly_rate_cents": 12000},
    }
    agreement = gateway.post("/agreements", json=terms, headers=ADMIN).json()["id"]
    wait_for(
        lambda: gateway.get(f"/agreements/{agreement}", headers=AGENT).status_code == 200,
        30,
        "the agreement",
    )
    ticket_id = gateway.post(
        "/tickets",
        headers=AGENT,
        json={
            "agreement_id": agreement,
            "reporter_email": "ops@nordlicht.de",
            "reporter_name": "Jana",
            "organisation": "Nordlicht GmbH",
            "subject": "VPN down",
            "body": "since 09:00",
            "category": "incident",
            "impact": "high",
            "urgency": "high",
        },
    ).json()["id"]

    def clock() -> dict[str, Any]:
        response = gateway.get(f"/tickets/{ticket_id}", headers=AGENT)
        return response.json()["sla"].get("response", {}) if response.status_code == 200 else {}

    wait_for(lambda: clock().get("due_at"), 30, "the response clock")
    assert (
        gateway.post(
            f"/tickets/{ticket_id}/status",
            headers=AGENT,
            json={"status": "awaiting_reply", "reason": "asked for logs"},
        ).status_code
        == 202
    )
    wait_for(lambda: clock().get("state") == "paused", 30, "the pause")
    time.sleep(3)  # the customer takes a while: this is the wait being measured, not a sync
    gateway.post(f"/tickets/{ticket_id}/status", headers=AGENT, json={"status": "in_progress"})
    wait_for(lambda: clock().get("breached_at"), 60, "the breach")

    changes = {
        e["data"]["to_status"]: e["data"]["changed_at"]
        for e in events_of(bootstrap, topics.TICKETS, "TicketStatusChanged")
    }
    waited = datetime.fromisoformat(changes["in_progress"]) - datetime.fromisoformat(
        changes["awaiting_reply"]
    )
    assert waited >= timedelta(seconds=3)
    (opened,) = events_of(bootstrap, topics.TICKETS, "TicketOpened")
    received = datetime.fromisoformat(opened["data"]["received_at"])
    (breach,) = events_of(bootstrap, topics.SLA, "SlaBreached")
    assert datetime.fromisoformat(breach["data"]["due_at"]) == received + TARGET + waited
    assert datetime.fromisoformat(breach["data"]["breached_at"]) >= received + TARGET + waited
    (paused,) = events_of(bootstrap, topics.SLA, "SlaClockPaused")
    spent = datetime.fromisoformat(changes["awaiting_reply"]) - received
    assert paused["data"]["spent_minutes"] == pytest.approx(spent.total_seconds() / 60)
    assert uuid.UUID(breach["subject_id"]) == uuid.UUID(ticket_id)


def test_a_raised_priority_retargets_the_clock_from_the_original_start(
    make_stack: StackFactory, postgres_url: str
) -> None:
    services = ("intake", "triage", "sla-timer", "billing", "gateway")
    stack = make_stack(postgres_url)
    stack.start(services)
    stack.wait_ready(services)
    gateway = httpx.Client(base_url=f"http://127.0.0.1:{stack.config.gateway_port}", timeout=10)
    bootstrap = stack.config.bootstrap
    targets = {"P1": TARGET.total_seconds() / 60, "P2": 60, "P3": 120, "P4": 240}
    terms = {
        "customer": "Nordlicht GmbH",
        "plan": "24x7 test",
        "calendar": {"timezone": "Europe/Berlin", "always_open": True},
        "matrix": "Z-P1P4",
        "targets": {p: {"response_minutes": t} for p, t in targets.items()},
        "warning_thresholds": [],
        "billing": {"model": "monthly_invoice", "hourly_rate_cents": 1},
    }
    agreement = gateway.post("/agreements", json=terms, headers=ADMIN).json()["id"]
    wait_for(
        lambda: gateway.get(f"/agreements/{agreement}", headers=AGENT).status_code == 200,
        30,
        "the agreement",
    )
    ticket_id = gateway.post(
        "/tickets",
        headers=AGENT,
        json={
            "agreement_id": agreement,
            "reporter_email": "ops@nordlicht.de",
            "reporter_name": "Jana",
            "organisation": "Nordlicht GmbH",
            "subject": "Slow VPN",
            "body": "a bit slow",
            "category": "incident",
            "impact": "low",
            "urgency": "low",
        },
    ).json()["id"]

    def view() -> dict[str, Any]:
        response = gateway.get(f"/tickets/{ticket_id}", headers=AGENT)
        return response.json() if response.status_code == 200 else {}

    wait_for(lambda: view().get("sla", {}).get("response", {}).get("priority") == "P4", 30, "P4")
    response = gateway.post(
        f"/tickets/{ticket_id}/priority",
        headers=AGENT,
        json={"priority": "P1", "reason": "all remote staff are blocked"},
    )
    assert response.status_code == 202
    wait_for(lambda: view().get("sla", {}).get("response", {}).get("breached_at"), 60, "breach")

    assert view()["priority"] == "P1"
    assert view()["triage_reason"] == "changed from P4 by agent: all remote staff are blocked"
    (opened,) = events_of(bootstrap, topics.TICKETS, "TicketOpened")
    received = datetime.fromisoformat(opened["data"]["received_at"])
    (retargeted,) = events_of(bootstrap, topics.SLA, "SlaClockRetargeted")
    assert datetime.fromisoformat(retargeted["data"]["due_at"]) == received + TARGET
    (breach,) = events_of(bootstrap, topics.SLA, "SlaBreached")
    assert breach["data"]["priority"] == "P1"
    assert datetime.fromisoformat(breach["data"]["due_at"]) == received + TARGET
