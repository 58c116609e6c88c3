"""Deadlines on the calendars of DOMAIN.md (issue 4 makes this exhaustive)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from servicedesk_contracts.messages import Calendar
from servicedesk_sla_timer.business_time import add_business_minutes
from servicedesk_stack.demo import DANISH_HOURS, WEEKDAYS_8_TO_5, provider_v_danish

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
    z_standard = Calendar(timezone="Europe/Berlin", weekly_hours=WEEKDAYS_8_TO_5)  # type: ignore[arg-type]
    start = datetime(2026, 3, 27, 16, 0, tzinfo=BERLIN)
    assert add_business_minutes(z_standard, start, 8 * 60) == datetime(
        2026, 3, 30, 13, 0, tzinfo=UTC
    )


def test_always_open_counts_every_minute() -> None:
    premium = Calendar(timezone="Europe/Berlin", always_open=True)
    start = datetime(2026, 11, 22, 3, 0, tzinfo=BERLIN)  # a Sunday night P1
    assert add_business_minutes(premium, start, 15) == datetime(2026, 11, 22, 3, 15, tzinfo=BERLIN)


def test_opening_hours_of_the_danish_provider_are_what_domain_md_says() -> None:
    assert DANISH_HOURS["fri"][0] == {"opens": "08:30", "closes": "15:30"}
    assert all(DANISH_HOURS[d][0]["closes"] == "16:00" for d in ("mon", "tue", "wed", "thu"))
