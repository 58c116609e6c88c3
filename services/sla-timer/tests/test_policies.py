"""Each provider's rules of DOMAIN.md, from the plan catalogue to exact deadlines."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from servicedesk_contracts.messages import Calendar, PlanSelection, Target
from servicedesk_contracts.plans import resolve
from servicedesk_sla_timer.application import clock_terms, target_budgets
from servicedesk_sla_timer.domain import RESPONSE, SlaClock

CPH = ZoneInfo("Europe/Copenhagen")
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
BERLIN = ZoneInfo("Europe/Berlin")


MONDAY_9_AMS = datetime(2026, 11, 23, 9, 0, tzinfo=AMSTERDAM)


def r_medium() -> PlanSelection:
    return PlanSelection.model_validate(
        {"customer": "C", "plan": "R Medium", "billing": {"hourly_rate_cents": 1}}
    )


def start_clock(
    calendar: Calendar,
    targets: dict[str, Target],
    priority: str,
    opened: datetime,
    paused: list[str] | None = None,
) -> SlaClock:
    clock = SlaClock(ticket_id=uuid.uuid4(), kind=RESPONSE)
    clock.note_triage("SD-000001", priority, opened, uuid.uuid4())
    budgets = target_budgets(calendar, targets, RESPONSE, opened)
    clock.start(calendar, budgets.minutes, paused or [], [], budgets.due_at_opening)
    return clock


def due(plan: str, category: str, priority: str, opened: datetime, **overrides: object) -> datetime:
    terms = resolve(
        PlanSelection.model_validate(
            {"customer": "C", "plan": plan, "billing": {"hourly_rate_cents": 1}, **overrides}
        )
    )
    calendar, targets = clock_terms(terms, category, opened)
    clock = start_clock(calendar, targets, priority, opened)
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
    # Questions are always D: 5 working days from Wednesday's 09:00 opening, so by 09:00 on
    # the fifth working day after it (not Tuesday 1 December's 17:00 close, which is the
    # same 40 open hours but the fourth working day).
    tuesday_night = datetime(2026, 11, 24, 23, 30, tzinfo=AMSTERDAM)
    assert due("R Medium", "question", "D", tuesday_night, extensions=["premium"]) == datetime(
        2026, 12, 2, 9, 0, tzinfo=AMSTERDAM
    )


# Provider R priority C: 2 working days on Mon-Fri 09:00-17:00 (Amsterdam, Dutch holidays).
# The rule (business_time.py): from the next opening if closed, the same clock time on the
# second working day after; customers read "2 working days" that way.
@pytest.mark.parametrize(
    ("opened", "expected"),
    [
        pytest.param((2026, 11, 21, 10, 0), (2026, 11, 25, 9, 0), id="saturday"),
        pytest.param((2026, 11, 23, 8, 0), (2026, 11, 25, 9, 0), id="before-opening"),
        pytest.param((2026, 11, 23, 9, 0), (2026, 11, 25, 9, 0), id="at-opening"),
        pytest.param((2026, 11, 23, 13, 15), (2026, 11, 25, 13, 15), id="mid-day"),
        pytest.param((2026, 11, 23, 17, 0), (2026, 11, 26, 9, 0), id="at-closing"),
        pytest.param((2026, 11, 23, 16, 59), (2026, 11, 25, 16, 59), id="before-closing"),
        # Christmas Day (Fri) is a Dutch holiday: from Monday 28 December's opening.
        pytest.param((2026, 12, 25, 10, 0), (2026, 12, 30, 9, 0), id="holiday"),
        # Thursday 31 December, then New Year's Day (Fri) and the weekend.
        pytest.param((2026, 12, 30, 15, 0), (2027, 1, 4, 15, 0), id="over-new-year"),
    ],
)
def test_r_priority_c_is_due_at_the_same_clock_time_two_working_days_on(
    opened: tuple[int, ...], expected: tuple[int, ...]
) -> None:
    at = datetime(*opened, tzinfo=AMSTERDAM)
    assert due("R Medium", "incident", "C", at) == datetime(*expected, tzinfo=AMSTERDAM)


def test_e_one_working_day_from_the_weekend_is_tuesday_at_opening() -> None:
    saturday = datetime(2026, 11, 21, 10, 0, tzinfo=AMSTERDAM)
    assert due("E SLA", "incident", "P2", saturday) == datetime(
        2026, 11, 24, 9, 0, tzinfo=AMSTERDAM
    )


@pytest.mark.parametrize(
    ("opened", "expected"),
    [
        # Thursday 4 June 2026 at the 16:00 close; Friday 5 June (Constitution Day) closed.
        pytest.param((2026, 6, 4, 16, 0), (2026, 6, 9, 8, 30), id="closing-before-a-holiday"),
        pytest.param((2026, 6, 5, 11, 0), (2026, 6, 9, 8, 30), id="on-a-holiday"),
        pytest.param((2026, 6, 8, 7, 0), (2026, 6, 9, 8, 30), id="before-opening"),
        # Thursday 15:45; Friday closes at 15:30, so its close (not Monday's opening).
        pytest.param((2026, 11, 19, 15, 45), (2026, 11, 20, 15, 30), id="shorter-next-day"),
    ],
)
def test_working_days_on_the_danish_calendar(
    opened: tuple[int, ...], expected: tuple[int, ...]
) -> None:
    terms = resolve(
        PlanSelection.model_validate(
            {"customer": "C", "plan": "V Basic", "billing": {"hourly_rate_cents": 1}}
        )
    )
    one_day = {"P3": Target(response_working_days=1)}
    at = datetime(*opened, tzinfo=CPH)
    assert start_clock(terms.calendar, one_day, "P3", at).due_at == datetime(*expected, tzinfo=CPH)


def test_a_pause_keeps_a_working_day_deadline_at_the_opening() -> None:
    calendar, targets = clock_terms(resolve(r_medium()), "incident", MONDAY_9_AMS)
    clock = start_clock(calendar, targets, "C", MONDAY_9_AMS, paused=["on_hold"])
    clock.observe_status("open", "on_hold", MONDAY_9_AMS)
    clock.observe_status("on_hold", "open", MONDAY_9_AMS + timedelta(days=1))
    # Paused one whole working day: Wednesday 09:00 moves to Thursday 09:00.
    assert clock.due_at == datetime(2026, 11, 26, 9, 0, tzinfo=AMSTERDAM)
    clock.retarget("D", MONDAY_9_AMS + timedelta(days=1, hours=1))
    # D: 5 working days from Monday 09:00 is the next Monday 09:00, one day later again.
    assert clock.due_at == datetime(2026, 12, 1, 9, 0, tzinfo=AMSTERDAM)


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
