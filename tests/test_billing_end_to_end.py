"""From time entries to issued statements on the real broker and PostgreSQL, with a late
entry for a closed month logged while billing is down."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from tests.conftest import StackFactory, metric_value

from servicedesk_stack.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ADMIN = {"Authorization": "Bearer admin-token"}
AGENT = {"Authorization": "Bearer agent-token"}
SERVICES = ("intake", "billing", "gateway")
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def test_a_late_entry_logged_while_billing_was_down_lands_on_the_next_statement(
    make_stack: StackFactory, postgres_url: str
) -> None:
    stack = make_stack(postgres_url)
    stack.start(SERVICES)
    stack.wait_ready(SERVICES)
    gateway = httpx.Client(base_url=f"http://127.0.0.1:{stack.config.gateway_port}", timeout=10)
    agreement = gateway.post(
        "/agreements/by-plan",
        headers=ADMIN,
        json={
            "customer": "Acme Logistics",
            "plan": "E SLA",
            "billing": {"model": "monthly_invoice", "hourly_rate_cents": 9000, "vat_rate": "0.21"},
        },
    ).json()["id"]
    wait_for(
        lambda: gateway.get(f"/agreements/{agreement}", headers=AGENT).status_code == 200,
        30,
        "the agreement",
    )
    ticket = gateway.post(
        "/tickets",
        headers=AGENT,
        json={
            "agreement_id": agreement,
            "reporter_email": "anna@acme.example",
            "reporter_name": "Anna",
            "organisation": "Acme",
            "subject": "Export fails",
            "body": "since Monday",
            "category": "incident",
            "impact": "low",
            "urgency": "low",
        },
    ).json()["id"]
    wait_for(
        lambda: gateway.get(f"/tickets/{ticket}", headers=AGENT).status_code == 200, 30, "ticket"
    )

    # Months as billing files them: in the agreement's time zone (E: Amsterdam); a statement
    # is issued once its month has ended, so the two months before this one.
    first_day = datetime.now(AMSTERDAM).replace(day=1, hour=0, minute=0, second=0)
    last_month = (first_day - timedelta(days=1)).replace(day=2, hour=10, microsecond=0)
    month_before = (last_month.replace(day=1) - timedelta(days=1)).replace(day=2)
    closed, current = month_before.strftime("%Y-%m"), last_month.strftime("%Y-%m")

    def log(started: datetime, minutes: int) -> None:
        response = gateway.post(
            f"/tickets/{ticket}/time-entries",
            headers=AGENT,
            json={"started_at": started.isoformat(), "duration_minutes": minutes},
        )
        assert response.status_code == 202

    def billing_has(seconds: float) -> bool:
        port = stack.config.port_of("billing")
        return (
            metric_value(port, "servicedesk_time_logged_seconds_total", billable="true") == seconds
        )

    def statement(month: str) -> dict[str, object] | None:
        response = gateway.get(f"/agreements/{agreement}/statements/{month}", headers=AGENT)
        return response.json() if response.status_code == 200 else None

    log(month_before, 50)
    log(month_before + timedelta(hours=2), 40)
    wait_for(lambda: billing_has(90 * 60), 30, "billing to record 90 minutes")
    gateway.post(f"/agreements/{agreement}/statements", headers=ADMIN, json={"month": closed})
    first = wait_for(lambda: statement(closed), 30, f"the {closed} statement")
    assert first["total_cents"] == 13500 + 2835  # 90 min at EUR 90/h, VAT 21 %

    stack.kill("billing")  # down while the agent logs time for the closed month
    log(month_before + timedelta(hours=5), 5)
    log(last_month, 30)
    stack.start_service("billing")
    stack.wait_ready(("billing",))
    wait_for(lambda: billing_has(35 * 60), 60, "billing to catch up after its restart")
    gateway.post(f"/agreements/{agreement}/statements", headers=ADMIN, json={"month": current})
    second = wait_for(lambda: statement(current), 30, f"the {current} statement")

    (line,) = second["lines"]  # type: ignore[index]
    assert (line["minutes_billed"], line["amount_cents"]) == (30, 4500)
    (adjustment,) = second["adjustment_lines"]  # type: ignore[index]
    assert (adjustment["month"], adjustment["minutes_logged"], adjustment["minutes_billed"]) == (
        closed,
        5,
        15,
    )
    assert second["subtotal_cents"] == 4500 + 2250
    assert statement(closed) == first  # an issued statement never changes
