"""The monthly evaluation report, from the messages the gateway's view is built of."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from servicedesk_contracts import messages as m
from servicedesk_gateway.reports import evaluation
from servicedesk_gateway.view.store import GatewayView
from servicedesk_stack.demo import provider_r_medium

AGREEMENT = uuid.uuid4()
NOV = datetime(2026, 11, 10, 10, 0, tzinfo=UTC)


def open_ticket(view: GatewayView, n: int, at: datetime, priority: str) -> uuid.UUID:
    ticket_id = uuid.uuid4()
    data = {
        "agreement_id": AGREEMENT,
        "reporter_email": "a@acme.example",
        "reporter_name": "A",
        "organisation": "Acme",
        "channel": "email",
        "subject": "s",
        "body": "b",
        "category": "incident",
        "impact": "one user",
        "urgency": "high",
        "reference": f"SD-{n:06d}",
        "received_at": at,
    }
    view.apply(m.TicketOpened.create(producer="intake", subject_id=ticket_id, data=data))
    triaged = {
        "reference": f"SD-{n:06d}",
        "agreement_id": AGREEMENT,
        "category": "incident",
        "priority": priority,
        "matrix": "R-ABCD",
        "impact": "one user",
        "urgency": "high",
        "reason": "R",
        "opened_at": at,
    }
    view.apply(m.TicketTriaged.create(producer="triage", subject_id=ticket_id, data=triaged))
    return ticket_id


def stop(view: GatewayView, ticket_id: uuid.UUID, kind: str, minutes: float, met: bool) -> None:
    data = {
        "clock_id": uuid.uuid4(),
        "reference": "SD",
        "kind": kind,
        "priority": "B",
        "stopped_at": NOV + timedelta(minutes=minutes),
        "due_at": NOV,
        "met": met,
        "spent_minutes": minutes,
    }
    view.apply(m.SlaClockStopped.create(producer="sla-timer", subject_id=ticket_id, data=data))


@pytest.fixture
def view(view: GatewayView) -> GatewayView:
    """The view with R's agreement (Europe/Amsterdam) registered."""
    view.apply(
        m.AgreementRegistered.create(
            producer="billing", subject_id=AGREEMENT, data=provider_r_medium()
        )
    )
    return view


def report(view: GatewayView, month: str) -> dict[str, Any]:
    agreement = view.queries.agreement(AGREEMENT)
    assert agreement is not None
    return evaluation(view.queries, agreement, month)


def clock_of(view: GatewayView, ticket_id: uuid.UUID, kind: str) -> dict[str, Any]:
    ticket = view.queries.ticket(ticket_id)
    assert ticket is not None
    return ticket.sla[kind]


def test_the_month_counts_tickets_first_responses_and_targets_met(view: GatewayView) -> None:
    first = open_ticket(view, 1, NOV, "B")
    second = open_ticket(view, 2, NOV + timedelta(days=1), "B")
    third = open_ticket(view, 3, NOV + timedelta(days=2), "A")
    open_ticket(view, 4, datetime(2026, 10, 31, 23, 30, tzinfo=UTC), "C")  # 00:30 1 Nov, Amsterdam
    open_ticket(view, 5, datetime(2026, 10, 31, 12, 0, tzinfo=UTC), "D")  # October
    stop(view, first, "response", 30, met=True)
    stop(view, second, "response", 300, met=False)
    stop(view, third, "response", 60, met=True)
    stop(view, first, "resolution", 400, met=True)

    november = report(view, "2026-11")
    assert november["tickets_opened"] == 4
    assert november["tickets_by_priority"] == {"A": 1, "B": 2, "C": 1}
    assert november["response"] == {
        "timed": 3,
        "met": 2,
        "breached": 1,
        "open": 0,
        "met_ratio": 0.6667,
        "median_business_minutes": 60,
        "p90_business_minutes": 300,
    }
    assert november["resolution"]["met"] == 1
    assert report(view, "2026-10")["tickets_opened"] == 1


def clock_message(kind: str, **data: object) -> dict[str, object]:
    return {"clock_id": uuid.uuid4(), "reference": "SD", "kind": kind, "priority": "B", **data}


def test_a_reopened_ticket_counts_as_open_until_it_is_closed_again(view: GatewayView) -> None:
    ticket_id = open_ticket(view, 1, NOV, "B")
    stop(view, ticket_id, "resolution", 100, met=True)
    resumed = clock_message(
        "resolution", resumed_at=NOV + timedelta(days=1), due_at=NOV + timedelta(days=2)
    )
    view.apply(m.SlaClockResumed.create(producer="sla-timer", subject_id=ticket_id, data=resumed))

    clock = clock_of(view, ticket_id, "resolution")
    assert clock["state"] == "running"
    assert clock["reopened_at"] == (NOV + timedelta(days=1)).isoformat()
    assert "stopped_at" not in clock
    summary = report(view, "2026-11")["resolution"]
    assert (summary["met"], summary["breached"], summary["open"]) == (0, 0, 1)
    assert summary["median_business_minutes"] is None

    stop(view, ticket_id, "resolution", 1200, met=False)  # closed again, too late
    summary = report(view, "2026-11")["resolution"]
    assert (summary["met"], summary["breached"], summary["open"]) == (0, 1, 0)
    assert summary["p90_business_minutes"] == 1200


def test_a_paused_clock_resumes_running(view: GatewayView) -> None:
    ticket_id = open_ticket(view, 1, NOV, "B")
    paused = clock_message("response", paused_at=NOV, spent_minutes=5)
    view.apply(m.SlaClockPaused.create(producer="sla-timer", subject_id=ticket_id, data=paused))
    resumed = clock_message("response", resumed_at=NOV + timedelta(hours=1), due_at=NOV)
    view.apply(m.SlaClockResumed.create(producer="sla-timer", subject_id=ticket_id, data=resumed))
    clock = clock_of(view, ticket_id, "response")
    assert clock["state"] == "running"
    assert "reopened_at" not in clock


def test_p90_is_the_nearest_rank(view: GatewayView) -> None:
    for n in range(10):  # response times 10, 20, ..., 100 minutes
        stop(view, open_ticket(view, n, NOV, "B"), "response", 10 * (n + 1), met=True)
    assert report(view, "2026-11")["response"]["p90_business_minutes"] == 90


def test_p90_of_one_value_is_that_value(view: GatewayView) -> None:
    stop(view, open_ticket(view, 1, NOV, "B"), "response", 42, met=True)
    assert report(view, "2026-11")["response"]["p90_business_minutes"] == 42


def test_warnings_show_in_threshold_order_and_a_breach_at_its_deadline(view: GatewayView) -> None:
    ticket_id = open_ticket(view, 1, NOV, "B")
    due, noticed = NOV + timedelta(hours=1), NOV + timedelta(hours=3)
    for threshold in (0.9, 0.75):  # however they arrive
        warned = clock_message(
            "response", threshold=threshold, due_at=due, warned_at=NOV, noticed_at=noticed
        )
        view.apply(m.SlaWarning.create(producer="sla-timer", subject_id=ticket_id, data=warned))
    breached = clock_message("response", due_at=due, breached_at=due, noticed_at=noticed)
    view.apply(m.SlaBreached.create(producer="sla-timer", subject_id=ticket_id, data=breached))
    clock = clock_of(view, ticket_id, "response")
    assert clock["warnings"] == [0.75, 0.9]
    assert (clock["breached_at"], clock["breach_noticed_at"]) == (
        due.isoformat(),
        noticed.isoformat(),
    )


def test_a_breached_clock_stays_breached_while_it_pauses_and_resumes(view: GatewayView) -> None:
    ticket_id = open_ticket(view, 1, NOV, "B")
    breached = clock_message("resolution", due_at=NOV, breached_at=NOV)
    view.apply(m.SlaBreached.create(producer="sla-timer", subject_id=ticket_id, data=breached))
    paused_at = NOV + timedelta(hours=1)
    paused = clock_message("resolution", paused_at=paused_at, spent_minutes=99)
    view.apply(m.SlaClockPaused.create(producer="sla-timer", subject_id=ticket_id, data=paused))
    clock = clock_of(view, ticket_id, "resolution")
    assert (clock["state"], clock["paused_at"]) == ("breached", paused_at.isoformat())
    resumed = clock_message("resolution", resumed_at=NOV + timedelta(hours=2), due_at=NOV)
    view.apply(m.SlaClockResumed.create(producer="sla-timer", subject_id=ticket_id, data=resumed))
    assert report(view, "2026-11")["resolution"]["breached"] == 1
