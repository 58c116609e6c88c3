"""The "explain this deadline" view, on Provider V's Danish calendar (DOMAIN.md): an
8-working-hour response clock started the day before Christmas Eve is due on Monday 28
December, and the timeline says why: 24 December closed every year, 25 and 26 December
public holidays, 27 December a Sunday. Pauses name the status change that caused them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from services.gateway.tests.view_messages import breached, opened, started, status

from servicedesk_contracts import Message
from servicedesk_contracts import messages as m
from servicedesk_gateway.auth import parse_tokens
from servicedesk_gateway.http import create_http_app
from servicedesk_gateway.view.store import GatewayView
from servicedesk_stack.demo import provider_v_danish

V = uuid.UUID("00000000-0000-4000-8000-00000000000c")
RECEIVED = datetime(2026, 12, 23, 13, 0, tzinfo=UTC)  # Wednesday 14:00 in Copenhagen
DUE = datetime(2026, 12, 28, 13, 30, tzinfo=UTC)  # Monday 14:30: 2 h + 6 h of open time
AGENT = {"Authorization": "Bearer a-token"}


async def test_the_timeline_explains_a_deadline_across_danish_christmas(
    view: GatewayView,
) -> None:
    view.apply(
        m.AgreementRegistered.create(producer="billing", subject_id=V, data=provider_v_danish())
    )
    ticket = opened(7, RECEIVED, agreement_id=V, organisation="Hygge Software ApS")
    held = RECEIVED + timedelta(minutes=30)
    paused = m.SlaClockPaused.create(
        producer="sla-timer",
        subject_id=ticket.subject_id,
        data={
            "clock_id": uuid.uuid4(),
            "reference": ticket.data.reference,
            "kind": "response",
            "priority": "P2",
            "paused_at": held,
            "spent_minutes": 30,
        },
        occurred_at=held,
    )
    view.apply(
        ticket,
        started(ticket, DUE - RECEIVED),
        status(ticket, "on_hold", held),
        paused,
        breached(ticket, DUE),
    )

    async def publish(topic: str, message: Message) -> None:
        raise AssertionError("reading publishes nothing")

    app = create_http_app(view.queries, publish, parse_tokens("a-token:agent"), lambda: DUE)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        by_reference = await client.get("/tickets/SD-000007/timeline", headers=AGENT)
        by_id = await client.get(f"/tickets/{ticket.subject_id}/timeline", headers=AGENT)
        missing = await client.get("/tickets/SD-999999/timeline", headers=AGENT)

    assert by_reference.status_code == 200, by_reference.text
    assert by_reference.json() == by_id.json()
    assert missing.status_code == 404
    entries = by_reference.json()["entries"]
    assert [e["event"] for e in entries] == [
        "TicketOpened",
        "SlaClockStarted",
        "TicketStatusChanged",
        "SlaClockPaused",
        "SlaBreached",
    ]
    start = entries[1]
    assert start["details"]["calendar"]["timezone"] == "Europe/Copenhagen"
    assert start["details"]["closed_days_skipped"] == [
        {"date": "2026-12-24", "why": "closed every year"},
        {"date": "2026-12-25", "why": "public holiday: Christmas Day"},
        {"date": "2026-12-26", "why": "public holiday: Second Day of Christmas"},
        {"date": "2026-12-27", "why": "no opening hours on Sundays"},
    ]
    assert entries[2]["who"] == "mette"
    assert entries[3]["why"] == (
        "status open -> on_hold by mette (asked the customer for the serial number)"
    )
    assert entries[4]["what"] == "response target breached at its deadline 2026-12-28T13:30:00Z"
