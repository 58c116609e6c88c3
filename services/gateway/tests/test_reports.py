"""The monthly evaluation report, from the messages the gateway's view is built of."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from servicedesk_contracts import messages as m
from servicedesk_gateway.read_model import ReadModel
from servicedesk_gateway.reports import evaluation
from servicedesk_stack.demo import provider_r_medium

AGREEMENT = uuid.uuid4()
NOV = datetime(2026, 11, 10, 10, 0, tzinfo=UTC)


def open_ticket(view: ReadModel, n: int, at: datetime, priority: str) -> uuid.UUID:
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


def stop(view: ReadModel, ticket_id: uuid.UUID, kind: str, minutes: float, met: bool) -> None:
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


def test_the_month_counts_tickets_first_responses_and_targets_met() -> None:
    view = ReadModel()
    view.apply(
        m.AgreementRegistered.create(
            producer="billing", subject_id=AGREEMENT, data=provider_r_medium()
        )
    )
    first = open_ticket(view, 1, NOV, "B")
    second = open_ticket(view, 2, NOV + timedelta(days=1), "B")
    third = open_ticket(view, 3, NOV + timedelta(days=2), "A")
    open_ticket(view, 4, datetime(2026, 10, 31, 23, 30, tzinfo=UTC), "C")  # 00:30 1 Nov, Amsterdam
    open_ticket(view, 5, datetime(2026, 10, 31, 12, 0, tzinfo=UTC), "D")  # October
    stop(view, first, "response", 30, met=True)
    stop(view, second, "response", 300, met=False)
    stop(view, third, "response", 60, met=True)
    stop(view, first, "resolution", 400, met=True)

    report = evaluation(view, AGREEMENT, "2026-11")
    assert report["tickets_opened"] == 4
    assert report["tickets_by_priority"] == {"A": 1, "B": 2, "C": 1}
    assert report["response"] == {
        "timed": 3,
        "met": 2,
        "breached": 1,
        "open": 0,
        "met_ratio": 0.6667,
        "median_business_minutes": 60,
        "p90_business_minutes": 300,
    }
    assert report["resolution"]["met"] == 1
    assert evaluation(view, AGREEMENT, "2026-10")["tickets_opened"] == 1
