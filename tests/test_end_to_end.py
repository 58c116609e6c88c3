"""The whole system on the real broker and PostgreSQL, used as its users would: another
system publishes raw JSON, an agent uses HTTP, customers get e-mail, targets breach, time
becomes a statement."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from tests.conftest import StackFactory, metric_value
from tests.kafka_tools import events_of, publish_raw

from servicedesk_contracts import topics
from servicedesk_stack.mail_sink import MailSink
from servicedesk_stack.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ADMIN = {"Authorization": "Bearer admin-token"}
AGENT = {"Authorization": "Bearer agent-token"}
FEW_SECONDS = 0.05  # minutes: 3 s
COPENHAGEN = ZoneInfo("Europe/Copenhagen")


def always_open_agreement(matrix: str, priorities: list[str]) -> dict[str, Any]:
    return {
        "customer": f"{matrix} test customer",
        "plan": "24x7 test plan",
        "calendar": {"timezone": "Europe/Copenhagen", "always_open": True},
        "matrix": matrix,
        "targets": {p: {"response_minutes": FEW_SECONDS} for p in priorities},
        "billing": {"model": "monthly_invoice", "hourly_rate_cents": 9500, "vat_rate": "0.25"},
    }


def test_tickets_from_kafka_and_http_are_confirmed_triaged_timed_breached_and_billed(
    make_stack: StackFactory, postgres_url: str, mail_sink: MailSink
) -> None:
    stack = make_stack(postgres_url)
    stack.start()
    stack.wait_ready()
    gateway = httpx.Client(base_url=f"http://127.0.0.1:{stack.config.gateway_port}", timeout=10)
    bootstrap = stack.config.bootstrap

    # Only admins register agreements; no token, no entry.
    z_terms = always_open_agreement("Z-P1P4", ["P1", "P2", "P3", "P4"])
    assert gateway.post("/agreements", json=z_terms).status_code == 401
    assert gateway.post("/agreements", json=z_terms, headers=AGENT).status_code == 403
    z_id = gateway.post("/agreements", json=z_terms, headers=ADMIN).json()["id"]
    r_terms = always_open_agreement("R-ABCD", ["A", "B", "C", "D"])
    r_id = gateway.post("/agreements", json=r_terms, headers=ADMIN).json()["id"]

    # Another system publishes a request as raw JSON on the inbound topic.
    request_id = str(uuid.uuid4())
    raw_request = {
        "event_id": request_id,
        "event_type": "SubmitTicket",
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "producer": "monitoring",
        "subject_id": request_id,
        "data": {
            "agreement_id": z_id,
            "reporter_email": "noc@nordlicht.de",
            "reporter_name": "NOC",
            "organisation": "Nordlicht GmbH",
            "channel": "api",
            "subject": "Backups failing for 48 hours",
            "body": "Every job fails since Sunday.",
            "category": "incident",
            "impact": "medium",
            "urgency": "high",
        },
    }
    publish_raw(
        bootstrap, topics.INBOUND, [(request_id.encode(), json.dumps(raw_request).encode())]
    )
    # An agent registers a phone call through the gateway.
    http_ticket = gateway.post(
        "/tickets",
        headers=AGENT,
        json={
            "agreement_id": r_id,
            "reporter_email": "anna@acme.example",
            "reporter_name": "Anna",
            "organisation": "Acme",
            "channel": "phone",
            "subject": "Warehouse scanners offline",
            "body": "All scanners in hall 2",
            "category": "Incident",
            "impact": "whole organisation",
            "urgency": "medium",
            "custom_fields": [{"name": "software version", "type": "version", "value": "4.2"}],
        },
    ).json()

    from servicedesk_contracts.messages import ticket_id_for_request

    kafka_ticket_id = str(ticket_id_for_request(uuid.UUID(request_id)))
    http_ticket_id = http_ticket["id"]

    def ticket(ticket_id: str) -> dict[str, Any] | None:
        response = gateway.get(f"/tickets/{ticket_id}", headers=AGENT)
        return response.json() if response.status_code == 200 else None

    def breached(ticket_id: str) -> dict[str, Any] | None:
        view = ticket(ticket_id)
        clock = (view or {}).get("sla", {}).get("response", {})
        return view if clock.get("breached_at") else None

    kafka_view = wait_for(lambda: breached(kafka_ticket_id), 90, "the Kafka ticket to breach")
    http_view = wait_for(lambda: breached(http_ticket_id), 60, "the HTTP ticket to breach")

    # Triaged with the matrix of each agreement.
    assert kafka_view["priority"] == "P2"  # Z: impact medium x urgency high
    assert http_view["priority"] == "B"  # R: whole organisation x medium criticality
    # The SLA deadline is the request's arrival plus the target on a 24x7 calendar.
    for view in (kafka_view, http_view):
        clock = view["sla"]["response"]
        received = datetime.fromisoformat(view["received_at"])
        assert datetime.fromisoformat(clock["started_at"]) == received
        assert datetime.fromisoformat(clock["due_at"]) == received + timedelta(seconds=3)
        assert datetime.fromisoformat(clock["breached_at"]) >= datetime.fromisoformat(
            clock["due_at"]
        )
    references = {kafka_view["reference"], http_view["reference"]}
    assert all(ref.startswith("SD-") for ref in references)
    assert len(references) == 2

    # Confirmations to each reporter, with the reference in the subject; breach alerts.
    def mails_to(address: str) -> list[str]:
        return [str(m["Subject"]) for m in mail_sink.messages if m["To"] == address]

    wait_for(lambda: len(mails_to("oncall@example.com")) >= 2, 30, "two breach alerts")
    assert any(f"[{kafka_view['reference']}]" in s for s in mails_to("noc@nordlicht.de"))
    assert any(f"[{http_view['reference']}]" in s for s in mails_to("anna@acme.example"))
    assert len(mails_to("noc@nordlicht.de")) == 1
    breach_alerts = events_of(bootstrap, topics.SLA, "SlaBreached")
    assert {e["subject_id"] for e in breach_alerts} == {kafka_ticket_id, http_ticket_id}

    # The agent answers late: the clock stops, breached; outcome never changes after.
    gateway.post(f"/tickets/{http_ticket_id}/replies", headers=AGENT, json={"body": "On it"})
    stopped = wait_for(
        lambda: (ticket(http_ticket_id) or {})["sla"]["response"].get("stopped_at"),
        30,
        "the response clock to stop",
    )
    assert stopped
    assert ticket(http_ticket_id)["sla"]["response"]["state"] == "breached"

    # Ten minutes of work become a statement line of fifteen (the minimum per request). A
    # statement waits until its month has ended in the agreement's zone (Copenhagen): the
    # work was done on the last evening of last month.
    first_day = datetime.now(COPENHAGEN).replace(day=1, hour=0, minute=0, second=0)
    started = first_day.replace(microsecond=0) - timedelta(hours=2)
    month = started.strftime("%Y-%m")
    response = gateway.post(
        f"/tickets/{http_ticket_id}/time-entries",
        headers=AGENT,
        json={"started_at": started.isoformat(), "duration_minutes": 10},
    )
    assert response.status_code == 202
    wait_for(lambda: (ticket(http_ticket_id) or {}).get("minutes_logged") == 10, 30, "time")
    # Tickets and billing commands are different topics: issue once billing has the entry.
    billing_port = stack.config.port_of("billing")
    wait_for(
        lambda: (
            metric_value(billing_port, "servicedesk_time_logged_seconds_total", billable="true")
            == 600
        ),
        30,
        "billing to record the entry",
    )
    gateway.post(f"/agreements/{r_id}/statements", headers=ADMIN, json={"month": month})
    statement_url = f"/agreements/{r_id}/statements/{month}"
    wait_for(lambda: gateway.get(statement_url, headers=AGENT).status_code == 200, 30, "statement")
    statement = gateway.get(statement_url, headers=AGENT).json()
    (line,) = statement["lines"]
    assert line["reference"] == http_view["reference"]
    assert (line["minutes_logged"], line["minutes_billed"]) == (10, 15)
    assert line["amount_cents"] == 2375
    assert statement["total_cents"] == 2375 + 594  # VAT 25 %: 593.75 -> 594
