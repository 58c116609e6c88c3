"""Business-time arithmetic on an agreement's calendar (pure: no I/O, no clock).

A calendar is open in local intervals of its IANA time zone on its weekdays, except on the
public holidays of its country (the `holidays` package) and on its extra closed dates; or
it is always open (24x7). Every boundary is computed from the local date and time and only
then converted to UTC, so daylight-saving changes move nothing that should not move.

What the functions mean, exactly:

- Business minutes between two instants: the open time in [start, end). A request that
  arrives while closed starts counting at the next opening.
- Adding N business minutes to an instant: the earliest instant by which N minutes of open
  time have passed after it. A result may be exactly a closing time (all of the day's time
  used), never inside closed time.
- A working day is a local date that is not closed and has opening hours.
- Adding N working days to an instant: first move to the next opening if closed; then the
  same local clock time on the Nth following working day. If that day is not open at that
  clock time, the deadline is that day's next opening after it, or its last closing if
  none follows (a Thursday 15:45 request due "1 working day" later is due at Friday's
  15:30 close when Friday closes earlier). So "1 working day" means "by this time on the
  next working day", as customers read it.
- Working days between two instants: the number of whole working days added to the start
  that are not later than the end.
- A clock keeps a working-day target as the business minutes from its start to that
  deadline (so pauses and priority changes work as for any target), plus the side of a
  closed gap the deadline lies on. The same open time is used up at a closing and at the
  next opening: Saturday 10:00 + 2 working days on a 09:00-17:00 calendar is Wednesday
  09:00 by the rule above, which is the same 16 open hours as Tuesday's 17:00 close. A
  deadline the rule puts at an opening stays at the opening (`add_minutes(...,
  at_opening=True)`), also when a pause moves it; one it puts at a closing stays there.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from servicedesk_contracts.messages import Calendar

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEARCH_LIMIT_DAYS = 3 * 366
"""A calendar closed this many days in a row is misconfigured, not slow."""
MINUTE = timedelta(minutes=1)


class CalendarNeverOpens(ValueError):
    pass


@lru_cache(maxsize=512)
def _public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year))


@dataclass(frozen=True)
class BusinessCalendar:
    calendar: Calendar
    zone: ZoneInfo = field(init=False)
    closed_dates: frozenset[date] = field(init=False)
    closed_every_year: frozenset[tuple[int, int]] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", ZoneInfo(self.calendar.timezone))
        object.__setattr__(self, "closed_dates", frozenset(self.calendar.closed_dates))
        annual = {
            tuple(int(part) for part in md.split("-")) for md in self.calendar.closed_every_year
        }
        object.__setattr__(self, "closed_every_year", frozenset(annual))

    # --- days ----------------------------------------------------------------------------

    def is_closed_day(self, day: date) -> bool:
        if day in self.closed_dates or (day.month, day.day) in self.closed_every_year:
            return True
        country = self.calendar.holidays_country
        return bool(
            country
            and day in _public_holidays(country, self.calendar.holidays_subdivision, day.year)
        )

    def day_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's opening intervals as UTC instants, in order; empty when closed."""
        if self.calendar.always_open:
            return [(self._at(day, time(0)), self._at(day + timedelta(days=1), time(0)))]
        if self.is_closed_day(day):
            return []
        intervals = self.calendar.weekly_hours.get(WEEKDAYS[day.weekday()], [])  # type: ignore[call-overload]
        spans = []
        for interval in sorted(intervals, key=lambda i: i.opens):
            closes_day = day + timedelta(days=1) if interval.closes_at_midnight else day
            spans.append((self._at(day, interval.opens), self._at(closes_day, interval.closes)))
        return spans

    def is_working_day(self, day: date) -> bool:
        return bool(self.day_intervals(day))

    def _at(self, day: date, clock: time) -> datetime:
        """The instant of a local day and time. A local time skipped by a daylight-saving
        change (02:30 on the last Sunday of March in Europe) maps to the instant after
        the gap, so an interval that opens or closes in the gap neither runs backwards nor
        gains time that does not exist."""
        wall = datetime.combine(day, clock)
        instant = wall.replace(tzinfo=self.zone).astimezone(UTC)
        if instant.astimezone(self.zone).replace(tzinfo=None) == wall:
            return instant
        return self._end_of_gap(wall)

    def _end_of_gap(self, wall: datetime) -> datetime:
        # Bisect, in whole seconds, between the two readings of the skipped wall time (the
        # offsets before and after the change) for the first instant not locally before it.
        readings = [wall.replace(tzinfo=self.zone, fold=f).astimezone(UTC) for f in (0, 1)]
        low, high = int(min(readings).timestamp()), int(max(readings).timestamp())
        while high - low > 1:
            middle = (low + high) // 2
            local = datetime.fromtimestamp(middle, UTC).astimezone(self.zone)
            if local.replace(tzinfo=None) >= wall:
                high = middle
            else:
                low = middle
        return datetime.fromtimestamp(high, UTC)

    def _local_day(self, instant: datetime) -> date:
        return instant.astimezone(self.zone).date()

    # --- open time -----------------------------------------------------------------------

    def intervals_from(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Opening intervals (UTC) that end after `start`, clipped to begin at it."""
        start = start.astimezone(UTC)
        day = self._local_day(start) - timedelta(days=1)  # an interval may span midnight
        closed_run = 0
        while closed_run < SEARCH_LIMIT_DAYS:
            intervals = self.day_intervals(day)
            closed_run = 0 if intervals else closed_run + 1
            for opens, closes in intervals:
                if closes > start:
                    yield max(opens, start), closes
            day += timedelta(days=1)
        raise CalendarNeverOpens(
            f"calendar in {self.calendar.timezone} has no opening hours for "
            f"{SEARCH_LIMIT_DAYS} days after {day - timedelta(days=SEARCH_LIMIT_DAYS)}"
        )

    def is_open(self, instant: datetime) -> bool:
        opens, _ = next(self.intervals_from(instant))
        return opens == instant.astimezone(UTC)

    def next_opening(self, instant: datetime) -> datetime:
        """`instant` itself if open, else the next time the calendar opens."""
        opens, _ = next(self.intervals_from(instant))
        return opens

    def add_minutes(self, start: datetime, minutes: float, *, at_opening: bool = False) -> datetime:
        """The earliest instant by which `minutes` of open time have passed after `start`;
        with `at_opening`, the latest: a result exactly at a closing becomes the next
        opening (no open time lies between them)."""
        if minutes < 0:
            raise ValueError(f"cannot add a negative duration ({minutes} minutes)")
        start = start.astimezone(UTC)
        if self.calendar.always_open:
            return start + minutes * MINUTE
        remaining = minutes * MINUTE
        if not remaining and not at_opening and self._is_closing(start):
            return start  # all of the day's time used already: nothing more to add
        for opens, closes in self.intervals_from(start):
            if remaining < closes - opens or (remaining == closes - opens and not at_opening):
                return opens + remaining
            remaining -= closes - opens
        raise AssertionError("unreachable: intervals_from raises when it runs out")

    def _is_closing(self, instant: datetime) -> bool:
        """`instant` is exactly when an opening interval closes (on its local day, or the
        day before for an interval that closes at midnight)."""
        day = self._local_day(instant)
        return any(
            closes == instant
            for when in (day - timedelta(days=1), day)
            for _, closes in self.day_intervals(when)
        )

    def minutes_between(self, start: datetime, end: datetime) -> float:
        """Open minutes in [start, end); 0 when `end` is not after `start`."""
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        if end <= start:
            return 0.0
        if self.calendar.always_open:
            return (end - start) / MINUTE
        total = timedelta()
        for opens, closes in self.intervals_from(start):
            if opens >= end:
                break
            total += min(closes, end) - opens
        return total / MINUTE

    # --- working days --------------------------------------------------------------------

    def next_working_day(self, day: date) -> date:
        for offset in range(1, SEARCH_LIMIT_DAYS):
            candidate = day + timedelta(days=offset)
            if self.is_working_day(candidate):
                return candidate
        raise CalendarNeverOpens(f"no working day within {SEARCH_LIMIT_DAYS} days of {day}")

    def add_working_days(self, start: datetime, days: int) -> datetime:
        if days < 0:
            raise ValueError(f"cannot add a negative number of working days ({days})")
        begin = self.next_opening(start)
        local = begin.astimezone(self.zone)
        day = local.date()
        for _ in range(days):
            day = self.next_working_day(day)
        return self._same_clock_time_or_nearest_open(day, local.time())

    def working_days_as_minutes(self, start: datetime, days: int) -> tuple[float, bool]:
        """`days` working days from `start` as the clock keeps them: the open minutes to the
        deadline, and whether the deadline is an opening (see the module's docstring), so
        that `add_minutes(start, minutes, at_opening=...)` gives `add_working_days` back."""
        due = self.add_working_days(start, days)
        minutes = self.minutes_between(start, due)
        return minutes, self.add_minutes(start, minutes) != due

    def _same_clock_time_or_nearest_open(self, day: date, clock: time) -> datetime:
        target = self._at(day, clock)
        intervals = self.day_intervals(day)
        starts = [opens for opens, _ in intervals]
        index = bisect.bisect_right(starts, target) - 1
        if index >= 0 and target <= intervals[index][1]:
            return target  # open at that clock time (or exactly closing)
        if index + 1 < len(intervals):
            return intervals[index + 1][0]  # before an opening that day: its opening
        return intervals[-1][1]  # after the day's last closing: that closing

    def working_days_between(self, start: datetime, end: datetime) -> int:
        count = 0
        while self.add_working_days(start, count + 1) <= end:
            count += 1
        return count


def add_business_minutes(calendar: Calendar, start: datetime, minutes: float) -> datetime:
    return BusinessCalendar(calendar).add_minutes(start, minutes)
