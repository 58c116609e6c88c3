"""The laws of business time, checked by hypothesis on the calendars of DOMAIN.md and on
arbitrary weekly hours, across years, year ends and daylight-saving changes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from servicedesk_contracts.messages import Calendar, Target
from servicedesk_sla_timer.application import target_budgets
from servicedesk_sla_timer.business_time import WEEKDAYS, BusinessCalendar
from servicedesk_sla_timer.domain import RESPONSE, SlaClock
from servicedesk_stack.demo import provider_r_medium, provider_v_danish, provider_z_premium

DOMAIN_CALENDARS = [
    BusinessCalendar(Calendar.model_validate(terms()["calendar"]))
    for terms in (provider_r_medium, provider_v_danish, provider_z_premium)
] + [
    # Provider R Premium: incidents may be reported 06:00-23:00, every day.
    BusinessCalendar(
        Calendar.model_validate(
            {
                "timezone": "Europe/Amsterdam",
                "weekly_hours": {d: [{"opens": "06:00", "closes": "23:00"}] for d in WEEKDAYS},
                "holidays_country": "NL",
            }
        )
    ),
]


@st.composite
def weekly_calendars(draw: st.DrawFn) -> BusinessCalendar:
    """Arbitrary calendars: 1-7 open weekdays with one or two intervals each, a time zone
    with daylight saving or without."""
    zone = draw(st.sampled_from(["Europe/Copenhagen", "America/New_York", "Asia/Tokyo", "UTC"]))
    days = draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True))
    hours = {}
    for day in days:
        opens = draw(st.integers(0, 20))
        closes = draw(st.integers(opens + 1, 24))
        intervals = [{"opens": time(opens), "closes": time(closes % 24)}]
        if closes <= 21 and draw(st.booleans()):
            later = draw(st.integers(closes + 1, 23))
            intervals.append({"opens": time(later), "closes": time((later + 1) % 24)})
        hours[day] = intervals
    return BusinessCalendar(Calendar.model_validate({"timezone": zone, "weekly_hours": hours}))


calendars = st.one_of(st.sampled_from(DOMAIN_CALENDARS), weekly_calendars())
instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
durations = st.integers(min_value=0, max_value=5 * 24 * 60)  # up to five days of minutes


@settings(max_examples=300, deadline=None)
@given(calendars, instants, durations)
def test_adding_then_measuring_gives_back_the_duration(
    calendar: BusinessCalendar, start: datetime, minutes: int
) -> None:
    due = calendar.add_minutes(start, minutes)
    assert abs(calendar.minutes_between(start, due) - minutes) < 1e-6


@settings(max_examples=300, deadline=None)
@given(calendars, instants, st.integers(min_value=1, max_value=5 * 24 * 60))
def test_a_deadline_never_falls_inside_closed_time(
    calendar: BusinessCalendar, start: datetime, minutes: int
) -> None:
    due = calendar.add_minutes(start, minutes)
    # The last minute counted was open time, and the deadline is open or a closing time.
    assert calendar.is_open(due - timedelta(microseconds=1))
    assert calendar.minutes_between(due - timedelta(minutes=1), due) > 0


@settings(max_examples=300, deadline=None)
@given(calendars, instants, instants, durations)
def test_deadlines_are_monotonic_in_the_start(
    calendar: BusinessCalendar, first: datetime, second: datetime, minutes: int
) -> None:
    early, late = sorted((first, second))
    assert calendar.add_minutes(early, minutes) <= calendar.add_minutes(late, minutes)


@settings(max_examples=200, deadline=None)
@given(calendars, instants, durations, durations)
def test_adding_in_two_steps_is_adding_once(
    calendar: BusinessCalendar, start: datetime, first: int, second: int
) -> None:
    in_steps = calendar.add_minutes(calendar.add_minutes(start, first), second)
    assert in_steps == calendar.add_minutes(start, first + second)


@settings(max_examples=200, deadline=None)
@given(calendars, instants, st.integers(min_value=0, max_value=10))
def test_working_days_are_counted_back_and_land_in_open_time(
    calendar: BusinessCalendar, start: datetime, days: int
) -> None:
    due = calendar.add_working_days(start, days)
    assert due >= start
    assert calendar.working_days_between(start, due) == days
    assert calendar.is_open(due) or calendar.is_open(due - timedelta(microseconds=1))


@settings(max_examples=200, deadline=None)
@given(calendars, instants, instants, st.integers(min_value=0, max_value=10))
def test_working_day_deadlines_are_monotonic(
    calendar: BusinessCalendar, first: datetime, second: datetime, days: int
) -> None:
    early, late = sorted((first, second))
    assert calendar.add_working_days(early, days) <= calendar.add_working_days(late, days)
    assert calendar.add_working_days(early, days) <= calendar.add_working_days(early, days + 1)


@settings(max_examples=200, deadline=None)
@given(calendars, instants, st.integers(min_value=0, max_value=10))
def test_a_working_day_deadline_lies_on_the_nth_working_day(
    calendar: BusinessCalendar, start: datetime, days: int
) -> None:
    day = calendar.next_opening(start).astimezone(calendar.zone).date()
    for _ in range(days):
        day = calendar.next_working_day(day)
    intervals = calendar.day_intervals(day)
    assert intervals[0][0] <= calendar.add_working_days(start, days) <= intervals[-1][1]


@settings(max_examples=200, deadline=None)
@given(calendars, instants, st.integers(min_value=1, max_value=10))
def test_a_clock_on_a_working_day_target_is_due_when_the_rule_says(
    calendar: BusinessCalendar, start: datetime, days: int
) -> None:
    # The clock keeps the target as business minutes; that must not move its deadline to
    # the previous working day's closing (the same open time, but not what customers read).
    targets = {"P1": Target(response_working_days=days)}
    budgets = target_budgets(calendar.calendar, targets, RESPONSE, start)
    clock = SlaClock(ticket_id=uuid.uuid4(), kind=RESPONSE)
    clock.note_triage("SD-000001", "P1", start, uuid.uuid4())
    clock.start(calendar.calendar, budgets.minutes, [], [], budgets.due_at_opening)
    assert clock.due_at == calendar.add_working_days(start, days)


@settings(max_examples=300, deadline=None)
@given(calendars, instants, durations)
def test_a_deadline_at_the_opening_is_the_same_open_time_as_at_the_closing(
    calendar: BusinessCalendar, start: datetime, minutes: int
) -> None:
    early = calendar.add_minutes(start, minutes)
    late = calendar.add_minutes(start, minutes, at_opening=True)
    assert early <= late
    assert calendar.minutes_between(early, late) == 0
    assert calendar.is_open(late)
