"""What makes a business calendar one the sla-timer can run: a time zone that exists, a
public-holiday country and subdivision the `holidays` package knows, and opening hours that
are not all closed away by holidays and closed dates.

An agreement the contracts accept must never fail later, when a ticket's clock starts; so
`Calendar` (in `messages`) refuses here what the sla-timer could not compute with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import holidays

HORIZON_DAYS = 366
"""A calendar closed this many days in a row never opens, for practical purposes: refused.
(The sla-timer gives up searching after three years.)"""

REFERENCE_YEARS = range(2024, 2029)
"""Years in which weekly hours, dates closed every year and public holidays are checked
against each other: a leap-year cycle and then some (holidays move from year to year)."""


def known_zone(name: str) -> str:
    """`name` if it is an IANA time zone, else a ValueError saying so."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    else:
        if name in _zones():
            return name
    raise ValueError(f"unknown IANA time zone {name!r} (e.g. Europe/Amsterdam)")


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def holiday_country(code: str) -> str:
    """The country's code as the `holidays` package spells it (upper case: "dk" is read as
    "DK"), or a ValueError naming the code."""
    canonical = code.strip().upper()
    if canonical not in holidays.list_supported_countries():
        raise ValueError(
            f"{code!r} is not a country the holidays package knows (ISO 3166-1 alpha-2, "
            "e.g. NL, DK, DE)"
        )
    return canonical


def holiday_subdivision(country: str, code: str) -> str:
    """The subdivision of `country` as the `holidays` package spells it (matched without
    regard to case), or a ValueError listing the ones it knows."""
    known = holidays.list_supported_countries()[country]
    for subdivision in known:
        if subdivision.casefold() == code.strip().casefold():
            return str(subdivision)
    offered = ", ".join(known) if known else "none"
    raise ValueError(f"{country} has no subdivision {code!r}; it has: {offered}")


@lru_cache(maxsize=4096)
def _public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year))


@lru_cache(maxsize=1024)
def longest_closed_run(
    open_weekdays: frozenset[int],
    closed_dates: frozenset[date],
    closed_every_year: frozenset[tuple[int, int]],
    country: str | None,
    subdivision: str | None,
) -> tuple[date, int] | None:
    """The first run of at least `HORIZON_DAYS` closed days (its first day and length),
    looked for in the reference years and around every closed date; None when there is none.
    Pure and cached: an agreement's terms are validated again whenever a service reads them.
    """

    def closed(day: date) -> bool:
        return (
            day.weekday() not in open_weekdays
            or day in closed_dates
            or (day.month, day.day) in closed_every_year
            or (country is not None and day in _public_holidays(country, subdivision, day.year))
        )

    measured: set[date] = set()
    for start in _candidate_days(closed_dates):
        if start in measured or not closed(start):
            continue
        first = _walk(start, -1, closed)
        last = _walk(start, 1, closed)
        length = (last - first).days + 1
        if length >= HORIZON_DAYS:
            return first, length
        measured.update(first + timedelta(days=n) for n in range(length))
    return None


def _candidate_days(closed_dates: Iterable[date]) -> Iterable[date]:
    """Every day of the reference years (runs of weekly, annual and public-holiday
    closures) and every extra closed date (runs they make longer)."""
    day, end = date(REFERENCE_YEARS.start, 1, 1), date(REFERENCE_YEARS.stop, 1, 1)
    while day < end:
        yield day
        day += timedelta(days=1)
    yield from sorted(closed_dates)


def _walk(day: date, step: int, closed: Callable[[date], bool]) -> date:
    """The last closed day reached from `day` going `step` days at a time (at most
    `HORIZON_DAYS`)."""
    for _ in range(HORIZON_DAYS):
        try:
            following = day + timedelta(days=step)
        except OverflowError:
            return day
        if not closed(following):
            return day
        day = following
    return day


class CalendarTerms(Protocol):
    """The fields of `messages.Calendar` that decide whether a day is closed."""

    @property
    def always_open(self) -> bool: ...
    @property
    def holidays_country(self) -> str | None: ...
    @property
    def holidays_subdivision(self) -> str | None: ...
    @property
    def closed_dates(self) -> list[date]: ...
    @property
    def closed_every_year(self) -> list[str]: ...
    @property
    def open_weekdays(self) -> frozenset[int]: ...


def why_closed(calendar: CalendarTerms, day: date) -> str | None:
    """Why a local date is closed on the calendar ("public holiday: Juledag"...), or None
    when it opens."""
    if calendar.always_open:
        return None
    if day in calendar.closed_dates:
        return "closed date"
    if f"{day.month:02d}-{day.day:02d}" in calendar.closed_every_year:
        return "closed every year"
    country = calendar.holidays_country
    if country and day in _public_holidays(country, calendar.holidays_subdivision, day.year):
        name = holidays.country_holidays(
            country, subdiv=calendar.holidays_subdivision, years=day.year
        ).get(day)
        return f"public holiday: {name}" if name else "public holiday"
    if day.weekday() not in calendar.open_weekdays:
        return f"no opening hours on {day.strftime('%A')}s"
    return None


def month_start(month: str, timezone: str) -> datetime:
    """The instant a month ("2026-11") begins in a time zone: midnight of its first day."""
    year, number = (int(part) for part in month.split("-"))
    return datetime.combine(date(year, number, 1), time(0), ZoneInfo(timezone))


def month_end(month: str, timezone: str) -> datetime:
    """The instant a month ("2026-11") ends in a time zone: midnight, local, as the next
    month begins. Billing periods are the agreement's local months."""
    year, number = (int(part) for part in month.split("-"))
    following = date(year + number // 12, number % 12 + 1, 1)
    return datetime.combine(following, time(0), ZoneInfo(timezone))
