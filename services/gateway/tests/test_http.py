"""The gateway's HTTP contract: auth, validation naming the field, commands published, and
the view answering queries. (Unit tier: publishing is captured in memory; the end-to-end
test drives the same API against the real broker.)"""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import yaml

from servicedesk_contracts import Message, topics
from servicedesk_contracts import messages as m
from servicedesk_contracts.asyncapi import TARGET
from servicedesk_gateway.auth import parse_tokens
from servicedesk_gateway.http import create_http_app
from servicedesk_gateway.view.store import GatewayView
from servicedesk_stack.demo import provider_r_medium

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
AGENT = {"Authorization": "Bearer a-token"}
ADMIN = {"Authorization": "Bearer b-token"}


@pytest.fixture
def published() -> list[tuple[str, Message]]:
    return []


@pytest.fixture
async def client(published: list[tuple[str, Message]], view: GatewayView) -> httpx.AsyncClient:
    async def publish(topic: str, message: Message) -> None:
        published.append((topic, message))

    app = create_http_app(
        view.queries, publish, parse_tokens("a-token:agent:mette,b-token:admin"), lambda: NOW
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


def ticket_body(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "agreement_id": str(uuid.uuid4()),
        "reporter_email": "anna@acme.example",
        "reporter_name": "Anna",
        "organisation": "Acme",
        "subject": "Scanner offline",
        "body": "Hall 2",
        "category": "incident",
        "impact": "one user",
        "urgency": "high",
    }
    return {**body, **changes}


async def test_no_or_unknown_token_is_401_and_agents_may_not_register_agreements(
    client: httpx.AsyncClient, published: list[tuple[str, Message]]
) -> None:
    assert (await client.get("/tickets")).status_code == 401
    assert (
        await client.get("/tickets", headers={"Authorization": "Bearer nope"})
    ).status_code == 401
    refused = await client.post("/agreements", json=provider_r_medium(), headers=AGENT)
    assert refused.status_code == 403
    assert published == []


async def test_an_admin_registers_an_agreement_as_a_command_to_billing(
    client: httpx.AsyncClient, published: list[tuple[str, Message]]
) -> None:
    response = await client.post("/agreements", json=provider_r_medium(), headers=ADMIN)
    assert response.status_code == 202
    ((topic, message),) = published
    assert topic == topics.BILLING_COMMANDS
    assert isinstance(message, m.RegisterAgreement)
    assert str(message.subject_id) == response.json()["id"]
    assert message.data.plan == "R Medium"


async def test_a_submitted_ticket_names_its_future_ticket_id(
    client: httpx.AsyncClient, published: list[tuple[str, Message]]
) -> None:
    response = await client.post("/tickets", json=ticket_body(), headers=AGENT)
    assert response.status_code == 202
    ((topic, message),) = published
    assert topic == topics.INBOUND
    assert message.occurred_at == NOW  # the clock starts when the request reached us
    assert response.json()["id"] == str(m.ticket_id_for_request(message.event_id))


async def test_bad_input_is_422_naming_the_field_and_nothing_is_published(
    client: httpx.AsyncClient, published: list[tuple[str, Message]]
) -> None:
    response = await client.post(
        "/tickets", json=ticket_body(reporter_email="anna-at-acme"), headers=AGENT
    )
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "reporter_email"]
    assert published == []


async def test_commands_on_unknown_tickets_are_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/tickets/{uuid.uuid4()}/replies", json={"body": "hi"}, headers=AGENT
    )
    assert response.status_code == 404


async def test_queries_read_the_view_and_replies_carry_the_agent_name(
    client: httpx.AsyncClient, view: GatewayView, published: list[tuple[str, Message]]
) -> None:
    ticket_id = uuid.uuid4()
    opened = m.TicketOpened.create(
        producer="intake",
        subject_id=ticket_id,
        data={**ticket_body(), "channel": "phone", "reference": "SD-000042", "received_at": NOW},
    )
    view.apply(opened)
    found = (await client.get(f"/tickets/{ticket_id}", headers=AGENT)).json()
    assert found["reference"] == "SD-000042"
    assert found["status"] == "open"
    response = await client.post(
        f"/tickets/{ticket_id}/replies", json={"body": "On it"}, headers=AGENT
    )
    assert response.status_code == 202
    assert published[-1][1].data.agent == "mette"  # type: ignore[attr-defined]


def test_the_view_accepts_triage_before_the_ticket_opened_event(view: GatewayView) -> None:
    ticket_id = uuid.uuid4()
    triaged = m.TicketTriaged.create(
        producer="triage",
        subject_id=ticket_id,
        data={
            "reference": "SD-000001",
            "agreement_id": uuid.uuid4(),
            "category": "incident",
            "priority": "P1",
            "matrix": "Z-P1P4",
            "impact": "high",
            "urgency": "high",
            "reason": "Z",
            "opened_at": NOW,
        },
    )
    view.apply(triaged)
    assert view.queries.ticket(ticket_id) is None  # not opened yet: not shown
    view.apply(
        m.TicketOpened.create(
            producer="intake",
            subject_id=ticket_id,
            data={
                **ticket_body(),
                "channel": "email",
                "reference": "SD-000001",
                "received_at": NOW,
            },
        )
    )
    shown = view.queries.ticket("sd-000001")  # by reference too, in any case
    assert shown is not None
    assert shown.priority == "P1"


def test_token_configuration_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="expected token:role"):
        parse_tokens("secret:superuser")
    assert parse_tokens("t:agent:mette")["t"].name == "mette"


async def test_agreements_by_plan_are_checked_against_the_catalogue(
    client: httpx.AsyncClient, published: list[tuple[str, Message]]
) -> None:
    plans = (await client.get("/plans", headers=AGENT)).json()
    assert "R Medium" in {p["name"] for p in plans}
    body = {"customer": "Acme", "plan": "R Gold", "billing": {"hourly_rate_cents": 9500}}
    refused = await client.post("/agreements/by-plan", json=body, headers=ADMIN)
    assert refused.status_code == 422
    (problem,) = refused.json()["detail"]
    assert problem["loc"] == ["body", "plan"]
    assert "unknown plan 'R Gold'" in problem["msg"]
    assert published == []
    body["plan"] = "R Medium"
    body["extensions"] = ["premium"]
    accepted = await client.post("/agreements/by-plan", json=body, headers=ADMIN)
    assert accepted.status_code == 202
    ((topic, message),) = published
    assert topic == topics.BILLING_COMMANDS
    assert isinstance(message, m.RegisterPlanAgreement)
    assert message.data.extensions == ["premium"]


def opened_ticket(n: int = 0) -> m.TicketOpened:
    return m.TicketOpened.create(
        producer="intake",
        subject_id=uuid.uuid4(),
        data={
            **ticket_body(),
            "channel": "phone",
            "reference": f"SD-{n:06d}",
            "received_at": NOW,
        },
    )


@pytest.mark.parametrize("route", ["time-entries", "timer", "timer/stop"])
async def test_an_empty_work_type_is_422_naming_the_field(
    client: httpx.AsyncClient, view: GatewayView, published: list[tuple[str, Message]], route: str
) -> None:
    ticket = opened_ticket()
    view.apply(ticket)
    body = {"started_at": "2026-11-24T08:00:00Z", "duration_minutes": 10, "work_type": ""}
    response = await client.post(f"/tickets/{ticket.subject_id}/{route}", json=body, headers=AGENT)
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "work_type"]
    assert published == []


def test_http_models_constrain_their_fields_as_the_contract_does() -> None:
    """A field the HTTP API takes and passes on to a contract message must be validated
    alike on both paths: otherwise HTTP accepts what the message refuses (a 500)."""
    from servicedesk_gateway.http import agreements, tickets

    pairs = [
        (tickets.TimeEntry, m.LogTimeData),
        (tickets.Timer, m.TimerData),
        (tickets.PriorityChange, m.ChangeTicketPriorityData),
        (tickets.StatusChange, m.ChangeTicketStatusData),
        (tickets.AgentReply, m.ReplyAsAgentData),
        (tickets.Assignment, m.AssignTicketData),
        (agreements.StatementRequest, m.IssueStatementData),
    ]
    for model, contract in pairs:
        for name, field_info in model.model_fields.items():
            theirs = contract.model_fields[name]
            assert (field_info.annotation, field_info.metadata) == (
                theirs.annotation,
                theirs.metadata,
            ), f"{model.__name__}.{name} differs from {contract.__name__}.{name}"


async def test_ticket_lists_stay_whole_while_the_view_changes(
    client: httpx.AsyncClient, view: GatewayView
) -> None:
    """Queries read the view's tables from worker threads while batches are written: each
    answer is a consistent page, never a 500 or a half-written ticket."""
    view.apply(*(opened_ticket(n) for n in range(300)))
    applying = True

    async def apply_events() -> None:
        n = 300
        while applying:
            batch = [opened_ticket(n + i) for i in range(50)]
            await asyncio.to_thread(view.apply, *batch)
            n += 50

    writer = asyncio.create_task(apply_events())
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns often: a race shows at once
    try:
        responses = await asyncio.gather(
            *(client.get("/tickets?limit=300", headers=AGENT) for _ in range(40))
        )
    finally:
        sys.setswitchinterval(switch_interval)
        applying = False
        await writer
    assert {r.status_code for r in responses} == {200}
    assert {len(r.json()["tickets"]) for r in responses} == {300}
    assert all(t["reference"] for r in responses for t in r.json()["tickets"])


async def test_a_malformed_statement_month_is_422_naming_it(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/agreements/{uuid.uuid4()}/statements/2026-13", headers=AGENT)
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["path", "month"]


async def test_a_command_not_decided_yet_reads_accepted_and_an_unknown_one_404(
    view: GatewayView,
) -> None:
    stored = uuid.uuid4()

    async def publish(topic: str, message: Message) -> None:
        return None

    def find_accepted(command_id: uuid.UUID) -> dict[str, object] | None:
        return (
            {"command_id": str(command_id), "status": "accepted", "command_type": "SubmitTicket"}
            if command_id == stored
            else None
        )

    app = create_http_app(
        view.queries,
        publish,
        parse_tokens("a-token:agent"),
        lambda: NOW,
        find_accepted=find_accepted,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        accepted = await client.get(f"/commands/{stored}", headers=AGENT)
        unknown = await client.get(f"/commands/{uuid.uuid4()}", headers=AGENT)
        anonymous = await client.get(f"/commands/{stored}")
    assert accepted.json()["status"] == "accepted"
    assert unknown.status_code == 404
    assert anonymous.status_code == 401


async def test_a_phone_ticket_logged_after_the_call_starts_at_the_call(
    client: httpx.AsyncClient, published: list[tuple[str, Message]]
) -> None:
    call = NOW - timedelta(minutes=40)
    body = ticket_body(channel="phone", received_at=call.isoformat())
    assert (await client.post("/tickets", json=body, headers=AGENT)).status_code == 202
    ((_, message),) = published
    assert message.occurred_at == call  # intake opens it as received then
    for when, kind in (
        (NOW + timedelta(minutes=5), "future_time"),
        (NOW - timedelta(days=8), "too_old"),
    ):
        refused = await client.post(
            "/tickets", json=ticket_body(received_at=when.isoformat()), headers=AGENT
        )
        assert refused.status_code == 422
        (problem,) = refused.json()["detail"]
        assert (problem["loc"], problem["type"]) == (["body", "received_at"], kind)
    assert len(published) == 1


async def test_swagger_ui_is_served_from_the_gateway_itself(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    script = re.search(r'src="([^"]+swagger-ui-bundle\.js)"', page.text)
    assert script is not None
    assert script.group(1).startswith("/docs/static/")
    served = await client.get(script.group(1))  # without a token, as a browser asks
    assert served.status_code == 200
    assert "SwaggerUIBundle" in served.text


async def test_asyncapi_document_is_served_without_a_token(client: httpx.AsyncClient) -> None:
    committed = await asyncio.to_thread(TARGET.read_text)  # contracts/asyncapi.yaml
    as_yaml = await client.get("/asyncapi.yaml")  # no token: documentation is public
    assert as_yaml.status_code == 200
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert as_yaml.text == committed
    as_json = await client.get("/asyncapi.json")
    assert as_json.status_code == 200
    assert as_json.headers["content-type"] == "application/json"
    document = as_json.json()
    assert document == yaml.safe_load(committed)
    assert document["asyncapi"] == "3.0.0"
    assert {channel["address"] for channel in document["channels"].values()} == set(topics.ALL)
    assert "/asyncapi.yaml" not in (await client.get("/openapi.json")).json()["paths"]
