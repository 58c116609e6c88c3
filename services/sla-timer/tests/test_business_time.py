"""Exact deadlines on the calendars of DOMAIN.md, as concrete cases."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from servicedesk_contracts.messages import Calendar
from servicedesk_contracts.plans import PLANS
from servicedesk_sla_timer.business_time import (
    WEEKDAYS,
    BusinessCalendar,
    CalendarNeverOpens,
    add_business_minutes,
)
from servicedesk_stack.demo import provider_r_medium, provider_v_danish

DANISH = Calendar.model_validate(provider_v_danish()["calendar"])
CPH = ZoneInfo("Europe/Copenhagen")
BERLIN = ZoneInfo("Europe/Berlin")


def test_danish_request_on_friday_afternoon_is_due_monday_at_closing() -> None:
    # Friday 15:00: 30 min left that day (Fri closes 15:30), 7 h 30 left for Monday 08:30.
    start = datetime(2026, 11, 20, 15, 0, tzinfo=CPH)
    assert add_business_minutes(DANISH, start, 8 * 60) == datetime(2026, 11, 23, 16, 0, tzinfo=CPH)


def test_danish_christmas_eve_and_holidays_are_closed() -> None:
    # Wed 23 Dec 12:00: 4 h that day; 24 Dec closed by agreement, 25 Dec public holiday,
    # then the weekend: the rest falls on Monday 28 Dec.
    start = datetime(2026, 12, 23, 12, 0, tzinfo=CPH)
    assert add_business_minutes(DANISH, start, 8 * 60) == datetime(2026, 12, 28, 12, 30, tzinfo=CPH)


def test_a_request_outside_opening_hours_starts_at_the_next_opening() -> None:
    start = datetime(2026, 11, 21, 23, 30, tzinfo=CPH)  # Saturday night
    assert add_business_minutes(DANISH, start, 60) == datetime(2026, 11, 23, 9, 30, tzinfo=CPH)


def test_daylight_saving_change_is_honoured() -> None:
    # Provider Z Standard (08:00-17:00 Berlin), P3 = 8 h, asked Friday 27 March 2026 16:00
    # CET; Monday 30 March is CEST: 1 h Friday + 7 h Monday -> 15:00 CEST = 13:00 UTC.
    z_standard = PLANS["Z Standard"].calendar
    start = datetime(2026, 3, 27, 16, 0, tzinfo=BERLIN)
    assert add_business_minutes(z_standard, start, 8 * 60) == datetime(
        2026, 3, 30, 13, 0, tzinfo=UTC
    )


def test_always_open_counts_every_minute() -> None:
    premium = Calendar(timezone="Europe/Berlin", always_open=True)
    start = datetime(2026, 11, 22, 3, 0, tzinfo=BERLIN)  # a Sunday night P1
    assert add_business_minutes(premium, start, 15) == datetime(2026, 11, 22, 3, 15, tzinfo=BERLIN)


def test_opening_hours_of_the_danish_provider_are_what_domain_md_says() -> None:
    hours = DANISH.weekly_hours
    assert (hours["fri"][0].opens, hours["fri"][0].closes) == (time(8, 30), time(15, 30))
    assert all(hours[d][0].closes == time(16) for d in ("mon", "tue", "wed", "thu"))
    assert "sat" not in hours
    assert sorted(DANISH.closed_every_year) == ["06-05", "12-24", "12-31"]


AMSTERDAM = ZoneInfo("Europe/Amsterdam")
R_HOURS = BusinessCalendar(Calendar.model_validate(provider_r_medium()["calendar"]))
R_PREMIUM_INCIDENTS = BusinessCalendar(
    Calendar.model_validate(
        {
            "timezone": "Europe/Amsterdam",
            "weekly_hours": {d: [{"opens": "06:00", "closes": "23:00"}] for d in WEEKDAYS},
        }
    )
)
Z_STANDARD = BusinessCalendar(PLANS["Z Standard"].calendar)
DK = BusinessCalendar(DANISH)


def test_danish_constitution_day_is_closed() -> None:
    # Thursday 4 June 15:00: one hour that day; Friday 5 June closed; Monday 08:30 + 7 h.
    start = datetime(2026, 6, 4, 15, 0, tzinfo=CPH)
    assert DK.add_minutes(start, 8 * 60) == datetime(2026, 6, 8, 15, 30, tzinfo=CPH)


def test_danish_year_end_skips_new_years_eve_and_new_years_day() -> None:
    start = datetime(2026, 12, 30, 15, 0, tzinfo=CPH)
    assert DK.add_minutes(start, 8 * 60) == datetime(2027, 1, 4, 15, 30, tzinfo=CPH)


def test_r_premium_incident_at_23_30_counts_from_06_00() -> None:
    start = datetime(2026, 11, 24, 23, 30, tzinfo=AMSTERDAM)  # after 23:00 reporting hours
    assert R_PREMIUM_INCIDENTS.add_minutes(start, 60) == datetime(
        2026, 11, 25, 7, 0, tzinfo=AMSTERDAM
    )


def test_z_standard_p1_late_on_friday_is_due_monday_morning() -> None:
    start = datetime(2026, 11, 20, 16, 30, tzinfo=BERLIN)
    assert Z_STANDARD.add_minutes(start, 60) == datetime(2026, 11, 23, 8, 30, tzinfo=BERLIN)


def test_business_minutes_between_skip_nights_weekends_and_holidays() -> None:
    friday = datetime(2026, 12, 23, 12, 0, tzinfo=CPH)
    monday = datetime(2026, 12, 28, 12, 30, tzinfo=CPH)
    assert DK.minutes_between(friday, monday) == 8 * 60
    assert DK.minutes_between(monday, friday) == 0


def test_r_two_working_days_is_the_same_time_two_working_days_later() -> None:
    tuesday = datetime(2026, 11, 24, 14, 0, tzinfo=AMSTERDAM)
    assert R_HOURS.add_working_days(tuesday, 2) == datetime(2026, 11, 26, 14, 0, tzinfo=AMSTERDAM)
    # Thursday 24 Dec: Christmas Day (Fri) is a Dutch holiday, then the weekend.
    christmas_eve = datetime(2026, 12, 24, 16, 0, tzinfo=AMSTERDAM)
    assert R_HOURS.add_working_days(christmas_eve, 2) == datetime(
        2026, 12, 29, 16, 0, tzinfo=AMSTERDAM
    )
    assert (
        R_HOURS.working_days_between(
            christmas_eve, datetime(2026, 12, 29, 15, 59, tzinfo=AMSTERDAM)
        )
        == 1
    )


def test_a_working_day_ends_at_a_shorter_days_closing() -> None:
    thursday = datetime(2026, 11, 19, 15, 45, tzinfo=CPH)  # Friday closes at 15:30
    assert DK.add_working_days(thursday, 1) == datetime(2026, 11, 20, 15, 30, tzinfo=CPH)


def test_working_days_from_a_weekend_count_from_monday_opening() -> None:
    saturday = datetime(2026, 11, 21, 11, 0, tzinfo=AMSTERDAM)
    assert R_HOURS.add_working_days(saturday, 1) == datetime(2026, 11, 24, 9, 0, tzinfo=AMSTERDAM)


def test_working_days_across_daylight_saving_keep_the_local_clock_time() -> None:
    friday = datetime(2026, 3, 27, 10, 0, tzinfo=BERLIN)  # CET; Monday is CEST
    assert Z_STANDARD.add_working_days(friday, 1) == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)


def test_a_calendar_that_never_opens_says_so() -> None:
    import pytest

    mondays = [datetime(2026, 11, 23).date() + timedelta(weeks=w) for w in range(200)]
    only_mondays = {
        "timezone": "UTC",
        "weekly_hours": {"mon": [{"opens": "09:00", "closes": "10:00"}]},
    }
    with pytest.raises(ValidationError, match="must open at least once"):  # the contract
        Calendar.model_validate({**only_mondays, "closed_dates": mondays})
    # The sla-timer's own guard, for a calendar that bypassed the contract:
    every_day_closed = Calendar.model_validate(only_mondays).model_copy(
        update={"closed_dates": mondays}
    )
    with pytest.raises(CalendarNeverOpens, match="no opening hours for 1098 days"):
        BusinessCalendar(every_day_closed).add_minutes(datetime(2026, 11, 22, tzinfo=UTC), 5)


def test_bad_calendars_are_refused_naming_the_problem() -> None:
    with pytest.raises(ValidationError, match="unknown IANA time zone 'Mars/Olympus'"):
        Calendar(timezone="Mars/Olympus", always_open=True)
    with pytest.raises(ValidationError, match=r"weekly_hours\n.*mon: opening intervals overlap"):
        Calendar.model_validate(
            {
                "weekly_hours": {
                    "mon": [
                        {"opens": "09:00", "closes": "12:00"},
                        {"opens": "11:00", "closes": "17:00"},
                    ]
                }
            }
        )


def test_opening_hours_in_a_skipped_hour_neither_run_backwards_nor_exist() -> None:
    """Amsterdam skips 02:00-03:00 on Sunday 29 March 2026: hours 02:30-03:00 that day do
    not exist (an empty interval), and 01:00-02:30 is one real hour (01:00-02:00)."""
    gap_day = date(2026, 3, 29)
    in_gap = BusinessCalendar(
        Calendar(
            timezone="Europe/Amsterdam",
            weekly_hours={
                "sun": [{"opens": "02:30", "closes": "03:00"}],
                "mon": [{"opens": "09:00", "closes": "17:00"}],
            },
        )
    )
    ((opens, closes),) = in_gap.day_intervals(gap_day)
    assert opens == closes == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST
    sunday = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    assert in_gap.add_minutes(sunday, 10) == datetime(2026, 3, 30, 7, 10, tzinfo=UTC)
    assert in_gap.minutes_between(sunday, datetime(2026, 3, 30, 12, 0, tzinfo=UTC)) == 300
    into_gap = BusinessCalendar(
        Calendar(
            timezone="Europe/Amsterdam",
            weekly_hours={
                "sun": [{"opens": "01:00", "closes": "02:30"}],
                "mon": [{"opens": "09:00", "closes": "17:00"}],
            },
        )
    )
    ((opens, closes),) = into_gap.day_intervals(gap_day)
    assert closes - opens == timedelta(hours=1)


def test_adding_nothing_at_a_closing_stays_there() -> None:
    """Found by the two-steps law on a clean clone: 7,200 minutes from New Year 2025 end at
    Wednesday 22 Jan 17:00 in Amsterdam (a closing), and adding 0 more moved to the next
    morning. Adding in two steps must be adding once."""
    dutch = BusinessCalendar(
        Calendar(
            timezone="Europe/Amsterdam",
            holidays_country="NL",
            weekly_hours={
                day: [{"opens": "09:00", "closes": "17:00"}]
                for day in ("mon", "tue", "wed", "thu", "fri")
            },
        )
    )
    new_year = datetime(2025, 1, 1, 0, 0, tzinfo=UTC)
    closing = dutch.add_minutes(new_year, 7200)
    assert closing == datetime(2025, 1, 22, 16, 0, tzinfo=UTC)
    assert dutch.add_minutes(closing, 0) == closing
    assert dutch.add_minutes(closing, 0, at_opening=True) == datetime(2025, 1, 23, 8, 0, tzinfo=UTC)
    assert dutch.add_minutes(closing, 1) == datetime(2025, 1, 23, 8, 1, tzinfo=UTC)
