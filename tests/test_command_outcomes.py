"""Every command gets an answer: `GET /commands/{id}` says applied (with what it produced,
a ticket's reference) or refused (with the service's reason), for commands the gateway
could not judge itself; every event a command caused names it as `causation_id`, and a
refused command's dead letter does too. On the real stack: broker, services, gateway."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tests.conftest import StackFactory
from tests.desk import phone_call, running_desk
from tests.kafka_tools import read_topic

from servicedesk_contracts import topics
from servicedesk_runtime.tansu import EmbeddedBroker
from servicedesk_stack.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
AGENT = {"Authorization": "Bearer agent-token"}


def decided(gateway: str, command_id: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{gateway}/commands/{command_id}", headers=AGENT)
    assert answer.status_code == 200, answer.text
    outcome: dict[str, Any] = answer.json()
    return outcome if outcome["status"] != "accepted" else None


def on_topic(bootstrap: str, topic: str, event_type: str) -> list[dict[str, Any]]:
    return [
        r.json() for r in read_topic(bootstrap, topic) if r.json().get("event_type") == event_type
    ]


def test_commands_are_answered_applied_or_refused_and_their_events_name_them(
    make_stack: StackFactory, broker: EmbeddedBroker
) -> None:
    _, gateway = running_desk(make_stack)
    submitted = httpx.post(f"{gateway}/tickets", json=phone_call(), headers=AGENT).json()
    assert submitted["command_location"] == f"/commands/{submitted['command_id']}"
    opened = wait_for(lambda: decided(gateway, submitted["command_id"]), 60, "the ticket opened")
    assert opened["status"] == "applied"
    assert opened["service"] == "intake"
    (ticket,) = [p for p in opened["produced"] if p["event"] == "Ticket.Opened"]
    assert ticket["subject_id"] == submitted["id"]
    assert ticket["reference"].startswith("SD-")

    ticket_url = f"{gateway}/tickets/{ticket['reference']}"
    moved = httpx.post(f"{ticket_url}/status", json={"status": "in_progress"}, headers=AGENT).json()
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    first = {"started_at": start.isoformat(), "duration_minutes": 30}
    overlapping = {
        "started_at": (start + timedelta(minutes=15)).isoformat(),
        "duration_minutes": 30,
    }
    logged = httpx.post(f"{ticket_url}/time-entries", json=first, headers=AGENT).json()
    assert (
        wait_for(lambda: decided(gateway, logged["command_id"]), 60, "the time entry")["status"]
        == "applied"
    )
    clash = httpx.post(f"{ticket_url}/time-entries", json=overlapping, headers=AGENT)
    assert clash.status_code == 202  # the gateway cannot know the agent's other entries
    refused = wait_for(lambda: decided(gateway, clash.json()["command_id"]), 60, "the refusal")
    assert refused["status"] == "refused"
    assert refused["reason"] == "overlapping_time"
    assert "already logged" in refused["detail"]
    assert refused["produced"] == []
    assert httpx.get(f"{gateway}/commands/{uuid.uuid4()}", headers=AGENT).status_code == 404

    changed = wait_for(
        lambda: on_topic(broker.bootstrap, topics.TICKETS, "TicketStatusChanged") or None,
        60,
        "the status change on its topic",
    )
    assert changed[0]["causation_id"] == moved["command_id"]
    assert changed[0]["correlation_id"] == moved["command_id"]
    # The person travels from the command to what it produced.
    assert changed[0]["actor"] == {"name": "agent", "role": "agent", "organisation": None}
    (opened_event,) = on_topic(broker.bootstrap, topics.TICKETS, "TicketOpened")
    assert opened_event["causation_id"] == submitted["command_id"]
    letters = [
        r
        for r in read_topic(broker.bootstrap, topics.DEAD_LETTER)
        if r.headers.get("causation_id") == clash.json()["command_id"].encode()
    ]
    assert len(letters) == 1
    assert letters[0].headers["error_reason"] == b"overlapping_time"
