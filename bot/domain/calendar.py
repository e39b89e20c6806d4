"""Working days on the mainland-China calendar (contract C3.1.3).

Public holidays and make-up working days (调休) come from the `holidays`
package: the State Council's published schedule for the years it has, and its
rule-based (lunar) holiday dates for years whose schedule is not published yet.
For such a year there are no make-up working days; the fallback is logged once.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from holidays.countries.china import ChinaStaticHolidays

log = logging.getLogger(__name__)


@lru_cache(maxsize=64)
def _china(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("CN", years=year)


@lru_cache(maxsize=64)
def has_official_schedule(year: int) -> bool:
    """True when the package carries the State Council's schedule for `year`."""
    known = year in ChinaStaticHolidays.special_public_holidays
    if not known:
        log.warning(
            "no official holiday schedule for this year; using rule-based holidays "
            "without make-up working days",
            extra={"year": year},
        )
    return known


class WorkingCalendar:
    def __init__(self, timezone: str) -> None:
        self.tz = ZoneInfo(timezone)

    def is_working_day(self, day: date) -> bool:
        has_official_schedule(day.year)
        try:
            return bool(_china(day.year).is_working_day(day))
        except (NotImplementedError, KeyError, ValueError):
            # Out of the package's range altogether: Monday to Friday.
            return day.weekday() < 5

    def add_working_days(self, start: date, days: int) -> date:
        """The `days`-th working day after `start` (the day itself does not count)."""
        current = start
        remaining = days
        while remaining > 0:
            current += timedelta(days=1)
            if self.is_working_day(current):
                remaining -= 1
        return current

    def local_date(self, at: datetime) -> date:
        return at.astimezone(self.tz).date()

    def due(self, at: datetime, days: int) -> datetime:
        """End of the `days`-th working day after `at`, in the company's zone, as UTC."""
        day = self.add_working_days(self.local_date(at), days)
        end = datetime.combine(day, time(23, 59, 59), tzinfo=self.tz)
        return end.astimezone(ZoneInfo("UTC"))

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]; negative when end is before start."""
        if end < start:
            return -self.working_days_between(end, start)
        return sum(
            self.is_working_day(start + timedelta(days=n)) for n in range(1, (end - start).days + 1)
        )
