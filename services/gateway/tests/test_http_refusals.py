"""What the gateway refuses before publishing, naming the field: agreements that would not
run, statements for months that have not ended, tickets for agreements nobody registered.
(Unit tier: publishing is captured in memory, the view is filled by hand.)"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from services.gateway.tests.view_messages import statement

from servicedesk_contracts import Message
from servicedesk_contracts import messages as m
from servicedesk_gateway.auth import parse_tokens
from servicedesk_gateway.http import create_http_app
from servicedesk_gateway.view.store import GatewayView
from servicedesk_stack.demo import provider_r_medium

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
AGENT = {"Authorization": "Bearer a-token"}
ADMIN = {"Authorization": "Bearer b-token"}
KNOWN = uuid.UUID("00000000-0000-4000-8000-00000000000a")


@pytest.fixture
def published() -> list[tuple[str, Message]]:
    return []


@pytest.fixture
def view(view: GatewayView) -> GatewayView:
    known = view
    known.apply(
        m.AgreementRegistered.create(
            producer="billing", subject_id=KNOWN, data=provider_r_medium()
        )  # Europe/Amsterdam
    )
    return known


@pytest.fixture
def client(published: list[tuple[str, Message]], view: GatewayView) -> httpx.AsyncClient:
    async def publish(topic: str, message: Message) -> None:
        published.append((topic, message))

    app = create_http_app(
        view.queries, publish, parse_tokens("a-token:agent,b-token:admin"), lambda: NOW
    )
    app.state.view_ready = lambda: True
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


def only_problem(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert isinstance(problem, dict)
    return problem


def selection(**changes: Any) -> dict[str, Any]:
    return {"customer": "Acme", "plan": "R Medium", "billing": {"hourly_rate_cents": 1}, **changes}


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown IANA time zone 'Mars/Olympus'"),
        ({"holidays_country": "XX"}, "holidays_country", "'XX' is not a country"),
        ({"plan": "R Gold"}, "plan", "unknown plan 'R Gold'"),
        ({"extensions": ["turbo"]}, "extensions", "no extension 'turbo'"),
        ({"targets": {"P1": {"response_minutes": 5}}}, "targets", "no priority 'P1'"),
        ({"holidays_subdivision": "Oost"}, "holidays_subdivision", "no subdivision 'Oost'"),
    ],
)
async def test_an_agreement_by_plan_that_would_not_run_is_422_naming_the_field(
    client: httpx.AsyncClient,
    published: list[tuple[str, Message]],
    changes: dict[str, Any],
    field: str,
    says: str,
) -> None:
    response = await client.post("/agreements/by-plan", json=selection(**changes), headers=ADMIN)
    problem = only_problem(response)
    assert problem["loc"] == ["body", field]
    assert says in problem["msg"]
    assert published == []


async def test_full_terms_with_an_unknown_holiday_country_are_422_naming_it(
    client: httpx.AsyncClient, published: list[tuple[str, Message]]
) -> None:
    terms = provider_r_medium()
    terms["calendar"]["holidays_country"] = "XX"
    problem = only_problem(await client.post("/agreements", json=terms, headers=ADMIN))
    assert problem["loc"] == ["body", "calendar", "holidays_country"]
    assert published == []


@pytest.mark.parametrize("month", ["2026-11", "2026-12", "2027-05"])
async def test_a_statement_for_a_month_that_has_not_ended_is_refused(
    client: httpx.AsyncClient, published: list[tuple[str, Message]], month: str
) -> None:
    response = await client.post(
        f"/agreements/{KNOWN}/statements", json={"month": month}, headers=ADMIN
    )
    problem = only_problem(response)
    assert problem["loc"] == ["body", "month"]
    assert f"{month} has not ended in Europe/Amsterdam" in problem["msg"]
    assert published == []


async def test_a_statement_for_an_ended_month_is_sent_to_billing(
    client: httpx.AsyncClient, published: list[tuple[str, Message]]
) -> None:
    response = await client.post(
        f"/agreements/{KNOWN}/statements", json={"month": "2026-10"}, headers=ADMIN
    )
    assert response.status_code == 202
    assert [type(message) for _, message in published] == [m.IssueStatement]


def ticket(agreement_id: uuid.UUID) -> dict[str, Any]:
    return {
        "agreement_id": str(agreement_id),
        "reporter_email": "anna@acme.example",
        "reporter_name": "Anna",
        "organisation": "Acme",
        "subject": "Scanner offline",
        "body": "Hall 2",
        "category": "incident",
        "impact": "one user",
        "urgency": "high",
    }


async def test_a_ticket_for_an_agreement_nobody_registered_is_refused(
    client: httpx.AsyncClient, published: list[tuple[str, Message]]
) -> None:
    unknown = uuid.uuid4()
    problem = only_problem(await client.post("/tickets", json=ticket(unknown), headers=AGENT))
    assert problem["loc"] == ["body", "agreement_id"]
    assert problem["msg"] == f"no such agreement {unknown}"
    assert published == []
    assert (await client.post("/tickets", json=ticket(KNOWN), headers=AGENT)).status_code == 202


async def test_a_ticket_may_name_an_agreement_this_gateway_has_just_sent_for_registration(
    client: httpx.AsyncClient,
) -> None:
    registered = await client.post("/agreements/by-plan", json=selection(), headers=ADMIN)
    new = uuid.UUID(registered.json()["id"])
    assert (await client.post("/tickets", json=ticket(new), headers=AGENT)).status_code == 202


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reporter_email", "anna@acme.example\n"),
        ("reporter_email", "anna\ud800@acme.example"),
        ("body", "\udfff"),
    ],
)
async def test_header_breaking_or_non_unicode_ticket_fields_are_422(
    client: httpx.AsyncClient, published: list[tuple[str, Message]], field: str, value: str
) -> None:
    body = ticket(KNOWN) | {field: value}
    response = await client.post(
        "/tickets",
        content=json.dumps(body).encode(),  # ASCII JSON: the surrogate as an escape
        headers={**AGENT, "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert ["body", field] in [p["loc"] for p in response.json()["detail"]]
    assert published == []


def known_ticket(view: GatewayView) -> uuid.UUID:
    """A ticket on the R agreement (matrix A-D), opened in the view."""
    opened = m.TicketOpened.create(
        producer="intake",
        subject_id=uuid.uuid4(),
        data={
            "agreement_id": KNOWN,
            "reporter_email": "anna@acme.example",
            "reporter_name": "Anna",
            "organisation": "Acme",
            "channel": "phone",
            "subject": "Scanners offline",
            "body": "Hall 2",
            "category": "incident",
            "impact": "one_user",
            "urgency": "high",
            "reference": "SD-000001",
            "received_at": NOW,
        },
    )
    view.apply(opened)
    return opened.subject_id


async def test_a_priority_the_tickets_matrix_never_gives_is_422_at_the_door(
    client: httpx.AsyncClient, published: list[tuple[str, Message]], view: GatewayView
) -> None:
    ticket = known_ticket(view)
    body = {"priority": "P1", "reason": "urgent"}
    response = await client.post(f"/tickets/{ticket}/priority", json=body, headers=AGENT)
    problem = only_problem(response)
    assert problem["loc"] == ["body", "priority"]
    assert "'P1' is not a priority of R-ABCD (one of A, B, C, D)" in problem["msg"]
    assert published == []
    body = {"priority": "A", "reason": "urgent"}
    assert (await client.post(f"/tickets/{ticket}/priority", json=body, headers=AGENT)).is_success


async def test_time_that_ends_in_the_future_is_422_at_the_door(
    client: httpx.AsyncClient, published: list[tuple[str, Message]], view: GatewayView
) -> None:
    ticket = known_ticket(view)
    body = {"started_at": "2026-11-28T11:55:00Z", "duration_minutes": 10}  # ends 12:05
    problem = only_problem(
        await client.post(f"/tickets/{ticket}/time-entries", json=body, headers=AGENT)
    )
    assert problem["loc"] == ["body", "started_at"]
    assert "in the future" in problem["msg"]
    assert published == []


async def test_a_statement_issued_already_is_409(
    client: httpx.AsyncClient, published: list[tuple[str, Message]], view: GatewayView
) -> None:
    issued = {"month": "2026-10"}
    first = await client.post(f"/agreements/{KNOWN}/statements", json=issued, headers=ADMIN)
    assert first.status_code == 202
    issued_before = statement(KNOWN, "Acme")
    view.apply(m.StatementIssued.create(producer="billing", subject_id=KNOWN, data=issued_before))
    again = await client.post(f"/agreements/{KNOWN}/statements", json=issued, headers=ADMIN)
    assert again.status_code == 409
    assert "issued already" in again.json()["detail"]
    assert len(published) == 1


async def test_a_refusal_names_the_field_without_echoing_a_huge_input(
    client: httpx.AsyncClient,
) -> None:
    body = {
        "agreement_id": str(KNOWN),
        "reporter_email": "anna@acme.example",
        "reporter_name": "Anna",
        "organisation": "Acme",
        "subject": "Scanners",
        "body": "x" * 900_000,
        "category": "incident",
        "impact": "one_user",
        "urgency": "high",
    }
    response = await client.post("/tickets", json=body, headers=AGENT)
    problem = only_problem(response)
    assert problem["loc"] == ["body", "body"]
    assert "at most 20000 characters" in problem["msg"]
    assert len(response.content) < 2000


async def test_impact_and_urgency_are_words_of_the_agreements_matrix(
    client: httpx.AsyncClient, published: list[tuple[str, Message]]
) -> None:
    body = {
        "agreement_id": str(KNOWN),  # R's A-D matrix: incidents by impact x criticality
        "reporter_email": "anna@acme.example",
        "reporter_name": "Anna",
        "organisation": "Acme",
        "subject": "Scanner offline",
        "body": "Hall 2",
        "category": "incident",
        "impact": "catastrophic",
        "urgency": "high",
    }
    refused = await client.post("/tickets", json=body, headers=AGENT)
    problem = only_problem(refused)
    assert problem["loc"] == ["body", "impact"]
    assert "one_user, multiple_users, whole_organisation" in problem["msg"]
    question = {**body, "category": "question"}  # the matrix applies to incidents only
    assert (await client.post("/tickets", json=question, headers=AGENT)).status_code == 202
    spelled = {**body, "impact": "Whole organisation"}
    assert (await client.post("/tickets", json=spelled, headers=AGENT)).status_code == 202
    assert len(published) == 2


async def test_the_agreements_are_listed_with_their_ids(
    client: httpx.AsyncClient, view: GatewayView
) -> None:
    other = uuid.UUID("00000000-0000-4000-8000-00000000000b")
    view.apply(
        m.AgreementRegistered.create(
            producer="billing", subject_id=other, data=provider_r_medium(customer="Aarhus ApS")
        )
    )
    response = await client.get("/agreements", headers=AGENT)
    assert response.status_code == 200
    listed = [(a["customer"], a["agreement_id"]) for a in response.json()]
    assert listed[0] == ("Aarhus ApS", str(other))  # by customer
    assert (provider_r_medium()["customer"], str(KNOWN)) in listed
    assert (await client.get("/agreements")).status_code == 401
