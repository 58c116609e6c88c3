"""The logs follow a request through the desk: the gateway's access line, the command each
service applied, every event it published (with the ticket, event and correlation ids), and
each dead letter with its key and event_id. One JSON object a line."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from tests.conftest import StackFactory
from tests.desk import phone_call, running_desk
from tests.kafka_tools import publish_raw

from servicedesk_contracts import topics
from servicedesk_stack.stack import Stack
from servicedesk_stack.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

AGENT = {"Authorization": "Bearer agent-token"}


def lines(stack: Stack, service: str) -> list[dict[str, Any]]:
    """The service's log, every line parsed (a line that is not JSON fails the test)."""
    text = stack.log_path(service).read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def find(stack: Stack, service: str, event: str, **fields: Any) -> dict[str, Any] | None:
    for line in lines(stack, service):
        if line.get("event") == event and all(line.get(k) == v for k, v in fields.items()):
            return line
    return None


def test_a_ticket_and_a_dead_letter_can_be_followed_through_the_logs(
    make_stack: StackFactory,
) -> None:
    stack, gateway = running_desk(make_stack)

    answer = httpx.post(f"{gateway}/tickets", json=phone_call(), headers=AGENT, timeout=10)
    assert answer.status_code == 202
    ticket_id, command_id = answer.json()["id"], answer.json()["command_id"]

    access = wait_for(
        lambda: find(stack, "gateway", "http_request", route="/tickets", method="POST"),
        30,
        "the gateway's access line",
    )
    assert (access["status"], access["role"], access["service"]) == (202, "agent", "gateway")
    assert access["caller"]

    applied = wait_for(
        lambda: find(stack, "intake", "command_applied", event_id=command_id),
        60,
        "intake's line for the command",
    )
    assert applied["event_type"] == "SubmitTicket"
    assert applied["topic"] == topics.INBOUND
    opened = wait_for(
        lambda: find(stack, "intake", "event_published", event_type="TicketOpened"),
        60,
        "intake's line for TicketOpened",
    )
    assert opened["subject_id"] == ticket_id  # the ticket id
    assert opened["causation_id"] == command_id
    assert opened["correlation_id"] is not None
    triaged = wait_for(
        lambda: find(stack, "triage", "event_published", event_type="TicketTriaged"),
        60,
        "triage's line for TicketTriaged",
    )
    assert triaged["subject_id"] == ticket_id  # the ticket id follows it everywhere
    # (The correlation id is carried from a command to the events it produced; an event
    # produced in answer to another service's event does not carry it on yet.)

    refused_id = str(uuid.uuid4())
    publish_raw(
        stack.config.bootstrap,
        topics.INBOUND,
        [(b"partner-42", json.dumps({"event_id": refused_id, "event_type": "Nope"}).encode())],
    )
    dead = wait_for(
        lambda: find(stack, "intake", "dead_lettered", event_id=refused_id),
        60,
        "intake's dead-letter line",
    )
    assert (dead["key"], dead["topic"], dead["level"]) == ("partner-42", topics.INBOUND, "warning")
    assert dead["reason"]
