"""Two customers, Acme Logistics and Nordlicht GmbH: every route of the API is walked with
Acme's token, aimed at Nordlicht's tickets, agreement, statement and commands, and nothing
of Nordlicht's comes back or is sent on. Acme still sees and works its own ticket, without
the desk's internal facts."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from services.gateway.tests.view_messages import NOW, opened, statement, time_logged

from servicedesk_contracts import Message
from servicedesk_contracts import messages as m
from servicedesk_contracts.envelope import Actor
from servicedesk_gateway.auth import parse_tokens
from servicedesk_gateway.http import create_http_app
from servicedesk_gateway.view.store import GatewayView
from servicedesk_stack.demo import provider_r_medium, provider_z_premium

ACME = uuid.UUID("00000000-0000-4000-8000-00000000000a")
NORDLICHT = uuid.UUID("00000000-0000-4000-8000-00000000000b")
TOKENS = (
    "acme:customer:Anna:Acme Logistics::billing,"
    "nord:customer:Jana:Nordlicht GmbH:00000000-0000-4000-8000-00000000000b,"
    "staff:agent:mette"
)
AS_ACME = {"Authorization": "Bearer acme"}
AS_JANA = {"Authorization": "Bearer nord"}


class Desk:
    def __init__(self, view: GatewayView) -> None:
        self.view = view
        self.published: list[tuple[str, Message]] = []
        self.acme_ticket = opened(1, agreement_id=ACME, organisation="Acme Logistics")
        self.nord_ticket = opened(
            2, agreement_id=NORDLICHT, organisation="Nordlicht GmbH", subject="Secret merger"
        )
        self.nord_command = uuid.uuid4()
        for agreement, terms in ((ACME, provider_r_medium()), (NORDLICHT, provider_z_premium())):
            view.apply(
                m.AgreementRegistered.create(producer="billing", subject_id=agreement, data=terms)
            )
            view.apply(
                m.StatementIssued.create(
                    producer="billing",
                    subject_id=agreement,
                    data=statement(agreement, terms["customer"]),
                )
            )
        view.apply(self.acme_ticket, self.nord_ticket)
        view.apply(time_logged(self.acme_ticket, 20, NOW + timedelta(minutes=5)))
        view.apply(
            m.CommandDecided.create(
                producer="intake",
                subject_id=uuid.uuid4(),
                actor=Actor(name="Jana", role="customer", organisation="Nordlicht GmbH"),
                data={
                    "command_id": self.nord_command,
                    "command_type": "SubmitTicket",
                    "service": "intake",
                    "outcome": "applied",
                    "produced": [
                        {"subject_id": self.nord_ticket.subject_id, "event": "Ticket.Opened"}
                    ],
                },
            )
        )

    def secrets(self) -> list[str]:
        """What must never reach Acme: Nordlicht's names, ids and words."""
        ticket = self.nord_ticket
        return [
            "Nordlicht",
            "Secret merger",
            ticket.data.reference,
            str(ticket.subject_id),
            str(NORDLICHT),
            str(self.nord_command),
        ]


@pytest.fixture
def desk(view: GatewayView) -> Desk:
    return Desk(view)


@pytest.fixture
def app(desk: Desk) -> FastAPI:
    async def publish(topic: str, message: Message) -> None:
        desk.published.append((topic, message))

    app = create_http_app(desk.view.queries, publish, parse_tokens(TOKENS), lambda: NOW)
    app.state.view_ready = lambda: True
    return app


@pytest.fixture
def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


BODIES: dict[str, dict[str, Any]] = {
    "/tickets/{ticket_id}/status": {"status": "in_progress"},
    "/tickets/{ticket_id}/priority": {"priority": "P1", "reason": "down"},
    "/tickets/{ticket_id}/replies": {"body": "hello"},
    "/tickets/{ticket_id}/notes": {"body": "note"},
    "/tickets/{ticket_id}/time-entries": {
        "started_at": "2026-11-24T08:00:00Z",
        "duration_minutes": 5,
    },
    "/tickets/{ticket_id}/timer": {},
    "/tickets/{ticket_id}/timer/stop": {},
    "/tickets/{ticket_id}/assignment": {"assignee": "mette"},
    "/agreements/{agreement_id}/statements": {"month": "2026-10"},
    "/agreements/{agreement_id}/cancellation": {"effective_on": "2026-12-31"},
    "/agreements/{agreement_id}/top-ups": {"minutes": 600},
}


def aimed_at_nordlicht(path: str, desk: Desk, by_reference: bool) -> str:
    ticket = desk.nord_ticket
    values = {
        "ticket_id": ticket.data.reference if by_reference else str(ticket.subject_id),
        "agreement_id": str(NORDLICHT),
        "month": "2026-10",
        "command_id": str(desk.nord_command),
        "sha256": "0" * 64,
        "mail_id": str(uuid.uuid4()),
        "notification_id": str(uuid.uuid4()),
    }
    return re.sub(r"\{(\w+)\}", lambda found: values[found.group(1)], path)


@pytest.mark.parametrize("by_reference", [False, True])
async def test_no_route_gives_acme_anything_of_nordlicht(
    app: FastAPI, client: httpx.AsyncClient, desk: Desk, by_reference: bool
) -> None:
    walked = 0
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            if "{" not in path and method != "get":
                continue  # creating things: below
            url = aimed_at_nordlicht(path, desk, by_reference)
            body = BODIES.get(path) if method == "post" else None
            answer = await client.request(method.upper(), url, headers=AS_ACME, json=body)
            walked += 1
            # A refusal may repeat what the caller sent (the id in the URL): nothing more.
            leaked = [x for x in desk.secrets() if x in answer.text and x not in url]
            assert not leaked, f"{method} {url} answered {answer.status_code} with {leaked}"
            if "{" in path:
                assert answer.status_code in (403, 404), f"{method} {url}: {answer.status_code}"
    assert walked >= 20
    assert desk.published == []  # nothing was sent on Acme's behalf about Nordlicht


async def test_acme_submits_only_for_itself(client: httpx.AsyncClient, desk: Desk) -> None:
    base = {
        "reporter_email": "anna@acme.example",
        "reporter_name": "Anna",
        "subject": "Printer",
        "body": "jams",
        "category": "incident",
        "impact": "one user",
        "urgency": "low",
    }
    for organisation, agreement in (("Nordlicht GmbH", ACME), ("Acme Logistics", NORDLICHT)):
        body = {**base, "organisation": organisation, "agreement_id": str(agreement)}
        refused = await client.post("/tickets", json=body, headers=AS_ACME)
        assert refused.status_code == 403, refused.text
    own = {**base, "organisation": "Acme Logistics", "agreement_id": str(ACME)}
    accepted = await client.post("/tickets", json=own, headers=AS_ACME)
    assert accepted.status_code == 202
    ((_, command),) = desk.published
    assert command.actor == Actor(name="Anna", role="customer", organisation="Acme Logistics")


async def test_acme_reads_and_answers_its_own_ticket_without_the_desks_internals(
    client: httpx.AsyncClient, desk: Desk
) -> None:
    listed = (await client.get("/tickets", headers=AS_ACME)).json()["tickets"]
    assert [t["reference"] for t in listed] == [desk.acme_ticket.data.reference]
    assert (listed[0]["minutes_logged"], listed[0]["assignee"]) == (None, None)  # internal
    probing = await client.get("/tickets?assignee=mette", headers=AS_ACME)
    assert len(probing.json()["tickets"]) == 1  # not a filter a customer can use to learn
    shown = (await client.get("/tickets/SD-000001", headers=AS_ACME)).json()
    assert shown["notifications"] is None
    events = [
        e["event"]
        for e in (await client.get("/tickets/SD-000001/timeline", headers=AS_ACME)).json()[
            "entries"
        ]
    ]
    assert events == ["TicketOpened"]  # the 20 minutes logged stay inside
    staff = (
        await client.get("/tickets/SD-000001/timeline", headers={"Authorization": "Bearer staff"})
    ).json()
    assert [e["event"] for e in staff["entries"]] == ["TicketOpened", "TimeLogged"]
    replied = await client.post(
        "/tickets/SD-000001/replies", json={"body": "Still jams"}, headers=AS_ACME
    )
    assert replied.status_code == 202
    ((_, reply),) = desk.published
    assert isinstance(reply, m.AddCustomerReply)
    assert reply.data.author_email == desk.acme_ticket.data.reporter_email
    for agent_only in ("/queues/mine", "/workload"):
        assert (await client.get(agent_only, headers=AS_ACME)).status_code == 403
    statement_url = f"/agreements/{ACME}/statements/2026-10"
    assert (await client.get(statement_url, headers=AS_ACME)).status_code == 200  # billing contact
    jana_reads = await client.get(f"/agreements/{NORDLICHT}/statements/2026-10", headers=AS_JANA)
    assert jana_reads.status_code == 403  # her own, but she is not the billing contact
    assert (await client.get(f"/commands/{desk.nord_command}", headers=AS_JANA)).status_code == 200
