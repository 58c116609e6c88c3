"""Each provider's rules of DOMAIN.md, from the plan catalogue to exact deadlines."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from servicedesk_contracts.messages import PlanSelection
from servicedesk_contracts.plans import resolve
from servicedesk_sla_timer.application import clock_terms, target_budgets
from servicedesk_sla_timer.domain import RESPONSE, SlaClock

CPH = ZoneInfo("Europe/Copenhagen")
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
BERLIN = ZoneInfo("Europe/Berlin")


def due(plan: str, category: str, priority: str, opened: datetime, **overrides: object) -> datetime:
    terms = resolve(
        PlanSelection.model_validate(
            {"customer": "C", "plan": plan, "billing": {"hourly_rate_cents": 1}, **overrides}
        )
    )
    calendar, targets = clock_terms(terms, category, opened)
    clock = SlaClock(ticket_id=uuid.uuid4(), kind=RESPONSE)
    clock.note_triage("SD-000001", priority, opened, uuid.uuid4(), category)
    clock.start(calendar, target_budgets(calendar, targets, RESPONSE, opened), [], [])
    assert clock.due_at is not None
    return clock.due_at


def test_v_answers_within_8_working_hours_friday_afternoon_to_monday() -> None:
    friday = datetime(2026, 11, 20, 15, 0, tzinfo=CPH)
    assert due("V Basic", "support", "P3", friday) == datetime(2026, 11, 23, 16, 0, tzinfo=CPH)


def test_v_is_closed_on_christmas_eve_every_year() -> None:
    # Thursday 23 Dec 2027: 4 h; Friday 24 Dec closed (every year); then the weekend.
    opened = datetime(2027, 12, 23, 12, 0, tzinfo=CPH)
    assert due("V Extended", "fault", "P2", opened) == datetime(2027, 12, 27, 12, 30, tzinfo=CPH)


def test_v_constitution_day_before_a_weekend() -> None:
    opened = datetime(2026, 6, 4, 15, 0, tzinfo=CPH)  # Thursday; Friday 5 June closed
    assert due("V Billed", "support", "P4", opened) == datetime(2026, 6, 8, 15, 30, tzinfo=CPH)


def test_r_premium_incident_at_23_30_is_answered_by_07_00() -> None:
    tuesday_night = datetime(2026, 11, 24, 23, 30, tzinfo=AMSTERDAM)
    assert due("R Medium", "incident", "A", tuesday_night, extensions=["premium"]) == datetime(
        2026, 11, 25, 7, 0, tzinfo=AMSTERDAM
    )


def test_r_premium_question_at_23_30_keeps_working_days() -> None:
    # Questions are always D: 5 working days from Wednesday's 09:00 opening, i.e. 40 open
    # hours, used up at Tuesday 1 December's 17:00 close (a deadline is the earliest
    # instant by which the time has passed; Wednesday 09:00 is the same business instant).
    tuesday_night = datetime(2026, 11, 24, 23, 30, tzinfo=AMSTERDAM)
    assert due("R Medium", "question", "D", tuesday_night, extensions=["premium"]) == datetime(
        2026, 12, 1, 17, 0, tzinfo=AMSTERDAM
    )


def test_r_without_premium_an_incident_waits_for_working_hours() -> None:
    tuesday_night = datetime(2026, 11, 24, 23, 30, tzinfo=AMSTERDAM)
    assert due("R Medium", "incident", "A", tuesday_night) == datetime(
        2026, 11, 25, 11, 0, tzinfo=AMSTERDAM
    )


def test_z_premium_p1_at_03_00_on_a_sunday() -> None:
    sunday = datetime(2026, 11, 22, 3, 0, tzinfo=BERLIN)
    assert due("Z Premium", "incident", "P1", sunday) == sunday + timedelta(minutes=15)


def test_z_trial_customers_get_premium_until_the_trial_ends() -> None:
    sunday = datetime(2026, 11, 22, 3, 0, tzinfo=BERLIN)
    in_trial = due("Z Standard", "incident", "P1", sunday, trial_until="2026-11-30")
    assert in_trial == sunday + timedelta(minutes=15)
    after = due("Z Standard", "incident", "P1", sunday, trial_until="2026-11-21")
    assert after == datetime(2026, 11, 23, 9, 0, tzinfo=BERLIN)  # Monday 08:00 + 1 h


def test_z_standard_hours_are_the_customers_local_time() -> None:
    friday = datetime(2026, 11, 20, 16, 30, tzinfo=ZoneInfo("America/New_York"))
    assert due("Z Standard", "incident", "P1", friday, timezone="America/New_York") == datetime(
        2026, 11, 23, 8, 30, tzinfo=ZoneInfo("America/New_York")
    )


def test_e_answers_within_one_working_day() -> None:
    friday = datetime(2026, 11, 20, 16, 30, tzinfo=AMSTERDAM)
    assert due("E SLA", "incident", "P2", friday) == datetime(
        2026, 11, 23, 16, 30, tzinfo=AMSTERDAM
    )
