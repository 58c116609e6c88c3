"""Business-time arithmetic on a calendar (pure).

A calendar is open in local intervals (IANA time zone) on its weekdays, except on public
holidays of its country and on its extra closed dates; or always open. Each local opening
boundary is converted to UTC on its own date, so daylight-saving changes are honoured.
(Issue 4 extends this with working days, pauses and exhaustive property tests.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from servicedesk_contracts.messages import Calendar

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEARCH_LIMIT_DAYS = 3 * 366
"""A calendar with no opening within this many days is treated as misconfigured."""


class CalendarNeverOpens(ValueError):
    pass


@lru_cache(maxsize=256)
def _public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year))


def is_closed_day(calendar: Calendar, day: date) -> bool:
    if day in calendar.closed_dates:
        return True
    if calendar.holidays_country:
        return day in _public_holidays(
            calendar.holidays_country, calendar.holidays_subdivision, day.year
        )
    return False


def open_intervals(calendar: Calendar, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The calendar's opening intervals in UTC, in order, from the local day of `start`."""
    zone = ZoneInfo(calendar.timezone)
    first_day = start.astimezone(zone).date()
    for offset in range(SEARCH_LIMIT_DAYS):
        day = first_day + timedelta(days=offset)
        if is_closed_day(calendar, day):
            continue
        for interval in calendar.weekly_hours.get(WEEKDAYS[day.weekday()], []):  # type: ignore[call-overload]
            opens = datetime.combine(day, interval.opens, zone).astimezone(UTC)
            closes = datetime.combine(day, interval.closes, zone).astimezone(UTC)
            yield opens, closes


def add_business_minutes(calendar: Calendar, start: datetime, minutes: float) -> datetime:
    """The instant when `minutes` of the calendar's open time have passed after `start`.
    A start outside opening hours counts from the next opening."""
    start = start.astimezone(UTC)
    if calendar.always_open:
        return start + timedelta(minutes=minutes)
    remaining = timedelta(minutes=minutes)
    for opens, closes in open_intervals(calendar, start):
        begin = max(opens, start)
        if closes <= begin:
            continue
        available = closes - begin
        if remaining <= available:
            return begin + remaining
        remaining -= available
    raise CalendarNeverOpens(f"calendar {calendar.timezone} has no opening within reach")
