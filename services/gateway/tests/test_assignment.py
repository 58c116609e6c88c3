"""Assignment at the gateway: the command carries who assigned, the door refuses what
intake would refuse (closed, unchanged, taken from its agent without a reason), and the
queues and workload follow the view."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from services.gateway.tests.view_messages import NOW, opened, started, status, warned

from servicedesk_contracts import Message
from servicedesk_contracts import messages as m
from servicedesk_gateway.auth import parse_tokens
from servicedesk_gateway.http import create_http_app
from servicedesk_gateway.view.store import GatewayView

METTE = {"Authorization": "Bearer m-token"}
LARS = {"Authorization": "Bearer l-token"}


def assigned(ticket: m.TicketOpened, assignee: str | None, group: str | None) -> m.TicketAssigned:
    return m.TicketAssigned.create(
        producer="intake",
        subject_id=ticket.subject_id,
        data={
            "reference": ticket.data.reference,
            "assignee": assignee,
            "group": group,
            "assigned_by": "lars",
            "assigned_at": NOW,
        },
        occurred_at=NOW + timedelta(minutes=1),
    )


@pytest.fixture
def published() -> list[tuple[str, Message]]:
    return []


@pytest.fixture
def client(view: GatewayView, published: list[tuple[str, Message]]) -> httpx.AsyncClient:
    async def publish(topic: str, message: Message) -> None:
        published.append((topic, message))

    app = create_http_app(
        view.queries, publish, parse_tokens("m-token:agent:mette,l-token:agent:lars"), lambda: NOW
    )
    app.state.email_of = lambda name: f"{name}@provider-v.dk"
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


def refs(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return [ticket["reference"] for ticket in page["tickets"]]


async def test_assigning_sends_the_command_and_the_door_refuses_what_intake_would(
    client: httpx.AsyncClient, view: GatewayView, published: list[tuple[str, Message]]
) -> None:
    ticket = opened(1)
    view.apply(ticket)
    body = {"assignee": "mette", "group": "first-line"}
    accepted = await client.post("/tickets/SD-000001/assignment", json=body, headers=LARS)
    assert accepted.status_code == 202, accepted.text
    ((_, command),) = published
    assert isinstance(command, m.AssignTicket)
    assert command.subject_id == ticket.subject_id
    assert (command.data.assigned_by, command.data.assignee_email) == (
        "lars",
        "mette@provider-v.dk",
    )

    view.apply(assigned(ticket, "mette", "first-line"))
    same = await client.post("/tickets/SD-000001/assignment", json=body, headers=LARS)
    assert same.status_code == 409
    taken = await client.post(
        "/tickets/SD-000001/assignment", json={"assignee": "jens"}, headers=LARS
    )
    assert taken.status_code == 422
    assert taken.json()["detail"][0]["loc"] == ["body", "reason"]
    view.apply(status(ticket, "closed", NOW + timedelta(hours=1)))
    closed = await client.post(
        "/tickets/SD-000001/assignment", json={"assignee": "jens", "reason": "x"}, headers=LARS
    )
    assert closed.status_code == 409
    missing = await client.post(f"/tickets/{uuid.uuid4()}/assignment", json=body, headers=LARS)
    assert missing.status_code == 404
    assert len(published) == 1


async def test_queues_and_workload_follow_assignments(
    client: httpx.AsyncClient, view: GatewayView
) -> None:
    tickets = [opened(n, NOW + timedelta(minutes=n)) for n in range(1, 5)]
    view.apply(*tickets)
    view.apply(started(tickets[0], timedelta(hours=3)), started(tickets[1], timedelta(hours=1)))
    due = tickets[1].data.received_at + timedelta(hours=1)
    view.apply(warned(tickets[1], due))
    view.apply(
        assigned(tickets[0], "mette", "first-line"),
        assigned(tickets[1], "mette", "first-line"),
        assigned(tickets[2], None, "first-line"),
        assigned(tickets[3], None, "second-line"),
    )
    assert refs(await client.get("/queues/mine", headers=METTE)) == ["SD-000002", "SD-000001"]
    assert refs(await client.get("/queues/mine", headers=LARS)) == []
    unassigned = await client.get("/queues/unassigned?group=first-line", headers=LARS)
    assert refs(unassigned) == ["SD-000003"]
    assert refs(await client.get("/queues/breaching-next", headers=LARS)) == [
        "SD-000002",
        "SD-000001",
    ]
    workload = (await client.get("/workload", headers=LARS)).json()
    assert workload == [{"assignee": "mette", "open": 2, "at_risk": 1, "breached": 0}]
