"""A statement computed by billing, as the gateway serves it: JSON, CSV for bookkeeping,
and an HTML page a customer could be sent."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from servicedesk_billing.statement import Entry, monthly_statement
from servicedesk_contracts import Message
from servicedesk_contracts import messages as m
from servicedesk_contracts.plans import resolve
from servicedesk_gateway.auth import parse_tokens
from servicedesk_gateway.http import create_http_app
from servicedesk_gateway.view.store import GatewayView
from servicedesk_runtime.database import Database, DatabaseUrl

AGENT = {"Authorization": "Bearer a-token"}


async def test_a_statement_reads_as_json_csv_and_an_html_page(tmp_path: Path) -> None:
    view = GatewayView(Database(DatabaseUrl.parse(f"sqlite:///{tmp_path}/gw.db", "gateway")))

    async def publish(topic: str, message: Message) -> None:
        raise AssertionError("reading a statement publishes nothing")

    app = create_http_app(
        view.queries, publish, parse_tokens("a-token:agent"), lambda: datetime.now(UTC)
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")

    agreement = uuid.uuid4()
    terms = resolve(
        m.PlanSelection.model_validate(
            {"customer": "Acme & Co", "plan": "R Small", "billing": {"hourly_rate_cents": 9500}}
        )
    )
    ticket = str(uuid.uuid4())
    issued = monthly_statement(
        agreement,
        "2026-11",
        terms,
        [Entry("e1", ticket, "SD-000001", 10, True, month="2026-11")],
        [Entry("e2", ticket, "SD-000001", 20, True, month="2026-10")],
    )
    view.apply(m.StatementIssued.create(producer="billing", subject_id=agreement, data=issued))
    url = f"/agreements/{agreement}/statements/2026-11"

    as_json = (await client.get(url, headers=AGENT)).json()
    assert as_json["total_cents"] == issued["total_cents"]

    response = await client.get(url, params={"format": "csv"}, headers=AGENT)
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["kind"] for r in rows] == ["fee", "time", "adjustment", "total", "total", "total"]
    assert rows[2]["month"] == "2026-10"
    assert int(rows[-1]["amount_cents"]) == issued["total_cents"]
    assert sum(int(r["amount_cents"]) for r in rows[:3]) == issued["subtotal_cents"]

    page = (await client.get(url, params={"format": "html"}, headers=AGENT)).text
    assert "Acme &amp; Co" in page  # escaped
    assert "EUR 195.00" in page  # R Small's fee
    assert "Adjustments for earlier months" in page
    assert f"EUR {issued['total_cents'] / 100:,.2f}" in page
    assert (await client.get(url, params={"format": "pdf"}, headers=AGENT)).status_code == 422
