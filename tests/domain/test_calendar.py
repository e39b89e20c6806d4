"""Working-day deadlines on the mainland-China calendar (contract C3.1.3)."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

import pytest

from bot.domain import calendar as calendar_module
from bot.domain.calendar import WorkingCalendar

CAL = WorkingCalendar("Asia/Shanghai")


def shanghai(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=CAL.tz)


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 2, 13), True),  # Friday before the Spring Festival
        (date(2026, 2, 14), True),  # Saturday, make-up working day
        (date(2026, 2, 17), False),  # Spring Festival
        (date(2026, 2, 23), False),  # last day of the Spring Festival break
        (date(2026, 2, 24), True),
        (date(2026, 2, 28), True),  # Saturday, make-up working day
        (date(2026, 3, 1), False),  # an ordinary Sunday
        (date(2026, 9, 20), True),  # Sunday, make-up working day for National Day
        (date(2026, 10, 1), False),  # National Day
        (date(2026, 10, 7), False),
        (date(2026, 10, 10), True),  # Saturday, make-up working day
    ],
)
def test_c3_1_3_official_calendar(day: date, working: bool) -> None:
    assert CAL.is_working_day(day) is working


def test_c3_1_3_ack_due_before_the_spring_festival() -> None:
    # Filed Friday 13 Feb 2026: Sat 14 Feb is a make-up working day (1), 15-23 Feb
    # are the Spring Festival break, then Tue 24 (2) and Wed 25 Feb (3).
    due = CAL.due(shanghai(2026, 2, 13, 16, 30), 3)
    assert due == shanghai(2026, 2, 25, 23, 59, 59)
    assert due.tzinfo is not None
    assert due.astimezone(UTC) == datetime(2026, 2, 25, 15, 59, 59, tzinfo=UTC)


def test_c3_1_3_ack_due_on_a_make_up_saturday() -> None:
    # Filed Friday 27 Feb 2026: the next working day is Saturday 28 Feb (make-up day).
    assert CAL.add_working_days(date(2026, 2, 27), 1) == date(2026, 2, 28)
    assert CAL.add_working_days(date(2026, 2, 27), 2) == date(2026, 3, 2)


def test_c3_1_3_due_over_national_day() -> None:
    # Wed 30 Sep: Oct 1-7 off, Thu 8 (1), Fri 9 (2), Sat 10 Oct make-up day (3).
    assert CAL.add_working_days(date(2026, 9, 30), 3) == date(2026, 10, 10)


def test_c3_1_3_the_company_day_decides_not_utc() -> None:
    # 17:00 UTC on Friday 13 Feb is already Saturday 14 Feb 01:00 in Shanghai.
    filed = datetime(2026, 2, 13, 17, 0, tzinfo=UTC)
    assert CAL.local_date(filed) == date(2026, 2, 14)
    assert CAL.due(filed, 1) == shanghai(2026, 2, 24, 23, 59, 59)


def test_c3_1_3_complex_tickets_get_more_working_days() -> None:
    filed = shanghai(2026, 3, 2, 10, 0)
    assert CAL.due(filed, 10) > CAL.due(filed, 3)
    assert CAL.working_days_between(date(2026, 3, 2), CAL.local_date(CAL.due(filed, 10))) == 10


def test_a_year_without_an_official_schedule_falls_back_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calendar_module.has_official_schedule.cache_clear()
    year = 2031
    with caplog.at_level(logging.WARNING, logger="bot.domain.calendar"):
        # Chinese New Year 2031 is 23 January (rule-based lunar date): still a holiday.
        assert not CAL.is_working_day(date(year, 1, 23))
        assert CAL.is_working_day(date(year, 3, 4))  # an ordinary Tuesday
        CAL.add_working_days(date(year, 5, 1), 20)
    warnings = [r for r in caplog.records if getattr(r, "year", None) == year]
    assert len(warnings) == 1
