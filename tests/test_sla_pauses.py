"""SLA clocks follow what happens to a ticket, to the microsecond: waiting for the customer
moves the breach by exactly the wait, and a raised priority retargets from the original
start. The real broker, PostgreSQL, and the services as processes."""

from __future__ import annotations

import time
from collections.abc import Callable
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
SERVICES = ("intake", "triage", "sla-timer", "billing", "gateway")


class Desk:
    """The running system as an agent and an admin use it over HTTP."""

    def __init__(self, make_stack: StackFactory, postgres_url: str) -> None:
        stack = make_stack(postgres_url)
        stack.start(SERVICES)
        stack.wait_ready(SERVICES)
        self.bootstrap = stack.config.bootstrap
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{stack.config.gateway_port}", timeout=10
        )

    def agreement(self, minutes: dict[str, float]) -> str:
        """A 24x7 Z agreement with these response targets and no warnings."""
        terms = {
            "customer": "Nordlicht GmbH",
            "plan": "24x7 test",
            "calendar": {"timezone": "Europe/Berlin", "always_open": True},
            "matrix": "Z-P1P4",
            "targets": {p: {"response_minutes": t} for p, t in minutes.items()},
            "paused_statuses": ["awaiting_reply"],
            "warning_thresholds": [],
            "billing": {"model": "monthly_invoice", "hourly_rate_cents": 12000},
        }
        agreement: str = self.http.post("/agreements", json=terms, headers=ADMIN).json()["id"]
        wait_for(
            lambda: self.http.get(f"/agreements/{agreement}", headers=AGENT).status_code == 200,
            30,
            "the agreement",
        )
        return agreement

    def ticket(self, agreement: str, impact: str, urgency: str) -> str:
        body = {
            "agreement_id": agreement,
            "reporter_email": "ops@nordlicht.de",
            "reporter_name": "Jana",
            "organisation": "Nordlicht GmbH",
            "subject": "VPN",
            "body": "VPN trouble",
            "category": "incident",
            "impact": impact,
            "urgency": urgency,
        }
        ticket_id: str = self.http.post("/tickets", headers=AGENT, json=body).json()["id"]
        return ticket_id

    def view(self, ticket_id: str) -> dict[str, Any]:
        response = self.http.get(f"/tickets/{ticket_id}", headers=AGENT)
        return response.json() if response.status_code == 200 else {}

    def response_clock(self, ticket_id: str) -> Callable[[], dict[str, Any]]:
        return lambda: self.view(ticket_id).get("sla", {}).get("response", {})

    def received_at(self) -> datetime:
        (opened,) = events_of(self.bootstrap, topics.TICKETS, "TicketOpened")
        return datetime.fromisoformat(opened["data"]["received_at"])

    def only(self, event_type: str) -> dict[str, Any]:
        (event,) = events_of(self.bootstrap, topics.SLA, event_type)
        return event


def test_waiting_for_the_customer_moves_the_breach_by_exactly_the_wait(
    make_stack: StackFactory, postgres_url: str
) -> None:
    desk = Desk(make_stack, postgres_url)
    target = TARGET.total_seconds() / 60
    agreement = desk.agreement(dict.fromkeys(("P1", "P2", "P3", "P4"), target))
    ticket_id = desk.ticket(agreement, "high", "high")
    clock = desk.response_clock(ticket_id)
    wait_for(lambda: clock().get("due_at"), 30, "the response clock")
    waiting = {"status": "awaiting_reply", "reason": "asked for logs"}
    assert (
        desk.http.post(f"/tickets/{ticket_id}/status", headers=AGENT, json=waiting).status_code
        == 202
    )
    wait_for(lambda: clock().get("state") == "paused", 30, "the pause")
    time.sleep(3)  # the customer takes a while: this is the wait being measured, not a sync
    desk.http.post(f"/tickets/{ticket_id}/status", headers=AGENT, json={"status": "in_progress"})
    wait_for(lambda: clock().get("breached_at"), 60, "the breach")

    changes = {
        e["data"]["to_status"]: datetime.fromisoformat(e["data"]["changed_at"])
        for e in events_of(desk.bootstrap, topics.TICKETS, "TicketStatusChanged")
    }
    waited = changes["in_progress"] - changes["awaiting_reply"]
    assert waited >= timedelta(seconds=3)
    received = desk.received_at()
    breach = desk.only("SlaBreached")
    assert datetime.fromisoformat(breach["data"]["due_at"]) == received + TARGET + waited
    assert datetime.fromisoformat(breach["data"]["breached_at"]) >= received + TARGET + waited
    spent = changes["awaiting_reply"] - received
    paused = desk.only("SlaClockPaused")
    assert paused["data"]["spent_minutes"] == pytest.approx(spent.total_seconds() / 60)
    assert breach["subject_id"] == ticket_id


def test_a_raised_priority_retargets_the_clock_from_the_original_start(
    make_stack: StackFactory, postgres_url: str
) -> None:
    desk = Desk(make_stack, postgres_url)
    agreement = desk.agreement({"P1": TARGET.total_seconds() / 60, "P2": 60, "P3": 120, "P4": 240})
    ticket_id = desk.ticket(agreement, "low", "low")
    clock = desk.response_clock(ticket_id)
    wait_for(lambda: clock().get("priority") == "P4", 30, "the P4 clock")
    raised = {"priority": "P1", "reason": "all remote staff are blocked"}
    assert (
        desk.http.post(f"/tickets/{ticket_id}/priority", headers=AGENT, json=raised).status_code
        == 202
    )
    wait_for(lambda: clock().get("breached_at"), 60, "the breach")

    view = desk.view(ticket_id)
    assert view["priority"] == "P1"
    assert view["triage_reason"] == "changed from P4 by agent: all remote staff are blocked"
    received = desk.received_at()
    retargeted = desk.only("SlaClockRetargeted")
    assert datetime.fromisoformat(retargeted["data"]["due_at"]) == received + TARGET
    breach = desk.only("SlaBreached")
    assert breach["data"]["priority"] == "P1"
    assert datetime.fromisoformat(breach["data"]["due_at"]) == received + TARGET
