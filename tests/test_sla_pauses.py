"""SLA clocks follow what happens to a ticket, to the microsecond: waiting for the customer
moves the breach by exactly the wait, the customer's answer ends the wait, a raised priority
retargets from the original start, and a backdated request breaches at its deadline. The
real broker, PostgreSQL, and the services as processes. Tests wait for what they assert and
compare recorded instants, never wall-clock durations."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tests.conftest import StackFactory
from tests.kafka_tools import events_of, publish_raw, read_topic

from servicedesk_contracts import messages as m
from servicedesk_contracts import topics
from servicedesk_stack.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ADMIN = {"Authorization": "Bearer admin-token"}
AGENT = {"Authorization": "Bearer agent-token"}
TARGET = timedelta(seconds=7.5)  # 0.125 business minutes: exact in binary floating point
MARGIN = timedelta(seconds=30)  # 0.5 minutes (exact): ample time to pause before it
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

    def agreement(self, minutes: dict[str, float], warnings: tuple[float, ...] = ()) -> str:
        """A 24x7 Z agreement with these response targets and warnings."""
        terms = {
            "customer": "Nordlicht GmbH",
            "plan": "24x7 test",
            "calendar": {"timezone": "Europe/Berlin", "always_open": True},
            "matrix": "Z-P1P4",
            "targets": {p: {"response_minutes": t} for p, t in minutes.items()},
            "paused_statuses": ["awaiting_reply"],
            "warning_thresholds": list(warnings),
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
        (opened,) = wait_for(
            lambda: events_of(self.bootstrap, topics.TICKETS, "TicketOpened"), 30, "the opening"
        )
        return datetime.fromisoformat(opened["data"]["received_at"])

    def only(self, event_type: str) -> dict[str, Any]:
        # Polled: a read of the embedded broker may end early (its end offsets are off).
        (event,) = wait_for(lambda: events_of(self.bootstrap, topics.SLA, event_type), 30)
        return event

    def set_status(self, ticket_id: str, status: str) -> None:
        body = {"status": status, "reason": "test"}
        response = self.http.post(f"/tickets/{ticket_id}/status", headers=AGENT, json=body)
        assert response.status_code == 202

    def status_changes(self, *statuses: str) -> dict[str, datetime]:
        """When the ticket went to each of `statuses` (waiting until all are read)."""

        def read() -> dict[str, datetime] | None:
            changes = {
                e["data"]["to_status"]: datetime.fromisoformat(e["data"]["changed_at"])
                for e in events_of(self.bootstrap, topics.TICKETS, "TicketStatusChanged")
            }
            return changes if set(statuses) <= set(changes) else None

        changes: dict[str, datetime] = wait_for(read, 30, f"status changes to {statuses}")
        return changes

    def publish(self, event_type: str, subject_id: str, occurred_at: datetime, data: Any) -> str:
        """Publishes a request on the inbound topic as another system would."""
        event_id = str(uuid.uuid4())
        request = {
            "event_id": event_id,
            "event_type": event_type,
            "schema_version": 1,
            "occurred_at": occurred_at.isoformat(),
            "producer": "mail-bridge",
            "subject_id": subject_id or event_id,
            "data": data,
        }
        key = (subject_id or event_id).encode()
        publish_raw(self.bootstrap, topics.INBOUND, [(key, json.dumps(request).encode())])
        return event_id


def test_waiting_for_the_customer_moves_the_breach_by_exactly_the_wait(
    make_stack: StackFactory, postgres_url: str
) -> None:
    desk = Desk(make_stack, postgres_url)
    target = MARGIN.total_seconds() / 60
    agreement = desk.agreement(dict.fromkeys(("P1", "P2", "P3", "P4"), target))
    ticket_id = desk.ticket(agreement, "high", "high")
    clock = desk.response_clock(ticket_id)
    wait_for(lambda: clock().get("due_at"), 30, "the response clock")
    desk.set_status(ticket_id, "awaiting_reply")
    wait_for(lambda: clock().get("state") == "paused", 30, "the pause")
    # The wait is whatever it took: measured from the recorded status changes.
    desk.set_status(ticket_id, "in_progress")
    wait_for(lambda: clock().get("breached_at"), 120, "the breach")

    changes = desk.status_changes("awaiting_reply", "in_progress")
    waited = changes["in_progress"] - changes["awaiting_reply"]
    assert waited > timedelta(0)
    received = desk.received_at()
    assert changes["awaiting_reply"] < received + MARGIN  # paused before it could breach
    breach = desk.only("SlaBreached")
    due = received + MARGIN + waited
    assert datetime.fromisoformat(breach["data"]["due_at"]) == due
    assert datetime.fromisoformat(breach["data"]["breached_at"]) == due
    assert datetime.fromisoformat(breach["data"]["noticed_at"]) >= due
    spent = changes["awaiting_reply"] - received
    paused = desk.only("SlaClockPaused")
    assert paused["data"]["spent_minutes"] == pytest.approx(spent.total_seconds() / 60)
    assert breach["subject_id"] == ticket_id


def test_the_customers_answer_ends_the_wait_and_the_clock_runs_again(
    make_stack: StackFactory, postgres_url: str
) -> None:
    desk = Desk(make_stack, postgres_url)
    agreement = desk.agreement(dict.fromkeys(("P1", "P2", "P3", "P4"), 60))
    ticket_id = desk.ticket(agreement, "high", "high")
    clock = desk.response_clock(ticket_id)
    wait_for(lambda: clock().get("due_at"), 30, "the response clock")
    desk.set_status(ticket_id, "awaiting_reply")
    wait_for(lambda: clock().get("state") == "paused", 30, "the pause")

    answered_at = datetime.now(UTC)
    reply = {"author_email": "ops@nordlicht.de", "body": "Here are the logs"}
    desk.publish("AddCustomerReply", ticket_id, answered_at, reply)
    wait_for(lambda: clock().get("state") == "running", 30, "the clock to run again")

    view = desk.view(ticket_id)
    assert (view["status"], view["customer_replies"]) == ("in_progress", 1)
    (back,) = wait_for(
        lambda: [
            e
            for e in events_of(desk.bootstrap, topics.TICKETS, "TicketStatusChanged")
            if e["data"]["from_status"] == "awaiting_reply"
        ],
        30,
        "the status change",
    )
    assert back["data"]["to_status"] == "in_progress"
    assert back["data"]["changed_by"] == "ops@nordlicht.de"
    changes = desk.status_changes("awaiting_reply", "in_progress")
    resumed = desk.only("SlaClockResumed")
    assert datetime.fromisoformat(resumed["data"]["resumed_at"]) == changes["in_progress"]
    waited = changes["in_progress"] - changes["awaiting_reply"]
    due = desk.received_at() + timedelta(minutes=60) + waited
    assert datetime.fromisoformat(resumed["data"]["due_at"]) == due
    assert datetime.fromisoformat(clock()["due_at"]) == due


def test_a_backdated_request_breaches_at_its_deadline_after_its_warnings_in_order(
    make_stack: StackFactory, postgres_url: str
) -> None:
    desk = Desk(make_stack, postgres_url)
    agreement = desk.agreement(dict.fromkeys(("P1", "P2", "P3", "P4"), 60), (0.9, 0.75))
    # A mail that queued for two hours: every timer of its clock is overdue on arrival.
    received = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    request = {
        "agreement_id": agreement,
        "reporter_email": "ops@nordlicht.de",
        "reporter_name": "Jana",
        "organisation": "Nordlicht GmbH",
        "channel": "email",
        "subject": "VPN",
        "body": "VPN trouble",
        "category": "incident",
        "impact": "high",
        "urgency": "high",
    }
    request_id = desk.publish("SubmitTicket", "", received, request)
    ticket_id = str(m.ticket_id_for_request(uuid.UUID(request_id)))
    clock = desk.response_clock(ticket_id)
    wait_for(lambda: clock().get("breached_at"), 60, "the breach")

    due = received + timedelta(minutes=60)
    view = clock()
    assert view["warnings"] == [0.75, 0.9]
    assert datetime.fromisoformat(view["breached_at"]) == due
    assert datetime.fromisoformat(view["breach_noticed_at"]) > due + timedelta(minutes=59)

    def timers_fired() -> list[dict[str, Any]] | None:
        fired = [
            r.json()
            for r in read_topic(desk.bootstrap, topics.SLA)
            if r.key == ticket_id.encode()
            and r.headers.get("event_type") in (b"SlaWarning", b"SlaBreached")
        ]
        return fired if len(fired) >= 3 else None

    fired = wait_for(timers_fired, 30, "the warnings and the breach on the topic")
    assert [(e["event_type"], e["data"].get("threshold")) for e in fired] == [
        ("SlaWarning", 0.75),
        ("SlaWarning", 0.9),
        ("SlaBreached", None),
    ]
    assert [datetime.fromisoformat(e["data"]["warned_at"]) for e in fired[:2]] == [
        received + timedelta(minutes=45),
        received + timedelta(minutes=54),
    ]


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
