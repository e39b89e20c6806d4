"""The projection of a ticket onto its analytics fact, and the scrub (pure, no database)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from bot.domain.analytics import (
    BACKLOG_BUCKETS,
    MAX_TEXT,
    AnalyticsFact,
    Suggestion,
    bucket_of,
    percent,
    project,
    scrub,
)
from bot.domain.calendar import WorkingCalendar
from bot.domain.models import Category, Channel, Correction, Ticket, TicketStatus
from tests.analytics_data import CONTACT_TEXT, SCRUBBED_TEXT, at, end_of_local_day, make_ticket

S = TicketStatus
CALENDAR = WorkingCalendar("Asia/Shanghai")
NOW = at("2026-03-02", 2)


def fact_of(ticket: Ticket, now: datetime = NOW, **kwargs: bool) -> AnalyticsFact:
    fact = project(ticket, CALENDAR, now, **kwargs)
    assert fact is not None
    return fact


def simple(**overrides: object) -> Ticket:
    values: dict[str, object] = {
        "created": at("2026-03-01"),
        "channel": Channel.WIDGET,
        "category": Category.PRICE,
        "rating": 4,
        "due": end_of_local_day("2026-03-04"),
        **overrides,
    }
    return make_ticket(**values)  # type: ignore[arg-type]


def test_c3_2_4_a_fact_names_no_ticket_no_customer_and_no_time() -> None:
    ticket = simple(expanded_use=True, text=CONTACT_TEXT)
    fact = fact_of(ticket)
    dumped = fact.model_dump(by_alias=True)
    assert dumped["_id"] == ticket.analytics_id
    assert ticket.id not in repr(dumped)
    assert ticket.customer_id not in repr(dumped)
    assert "customer_id" not in dumped
    assert "reference" not in dumped
    assert "attachments" not in dumped
    assert "events" not in dumped
    for value in dumped.values():
        assert not isinstance(value, datetime)
    assert fact.text == SCRUBBED_TEXT


def test_days_are_local_days_in_the_company_zone() -> None:
    # 17:30 UTC is 01:30 the next day in Shanghai.
    ticket = simple(
        created=at("2026-02-27", 17, 30),
        first_response=at("2026-02-28", 16, 30),
        changes=[(at("2026-02-28", 16, 30), S.RESOLVED)],
    )
    fact = fact_of(ticket)
    assert fact.day == date(2026, 2, 28)
    assert fact.first_response_day == date(2026, 3, 1)
    assert fact.closed_day == date(2026, 3, 1)
    assert fact.response_due_day == date(2026, 3, 4)


@pytest.mark.parametrize(
    ("first_response", "status_changes", "now", "expected"),
    [
        (at("2026-03-02"), [], NOW, True),  # before the due day ends
        (end_of_local_day("2026-03-04"), [], NOW, True),  # at the last second: on time
        (at("2026-03-05"), [], at("2026-03-06"), False),  # after it
        (None, [], NOW, None),  # waiting, not due yet: not counted
        (None, [], at("2026-03-05"), False),  # waiting, overdue: late
        (None, [(at("2026-03-01", 5), S.CLOSED)], at("2026-03-09"), None),  # closed, none
    ],
)
def test_c3_1_3_first_response_on_time(
    first_response: datetime | None,
    status_changes: list[tuple[datetime, TicketStatus]],
    now: datetime,
    expected: bool | None,
) -> None:
    ticket = simple(first_response=first_response, changes=status_changes)
    assert fact_of(ticket, now).on_time is expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ([(at("2026-03-02"), S.ADOPTED)], Suggestion.ADOPTED),
        ([(at("2026-03-02"), S.DECLINED), (at("2026-03-03"), S.CLOSED)], Suggestion.DECLINED),
        # Reopened after the decision: the decision no longer stands.
        (
            [(at("2026-03-02"), S.ADOPTED), (at("2026-03-03"), S.IN_PROGRESS)],
            None,
        ),
        ([(at("2026-03-02"), S.RESOLVED)], None),
        ([], None),
    ],
)
def test_c3_1_5_the_standing_decision_on_a_suggestion(
    changes: list[tuple[datetime, TicketStatus]], expected: Suggestion | None
) -> None:
    assert fact_of(simple(changes=changes)).suggestion is expected


def test_open_and_closed_day_follow_the_status() -> None:
    assert fact_of(simple()).open is True
    assert fact_of(simple()).closed_day is None
    closed = fact_of(simple(changes=[(at("2026-03-03", 20), S.CLOSED)]))
    assert (closed.open, closed.closed_day) == (False, date(2026, 3, 4))


@pytest.mark.parametrize(
    ("overrides", "withdrawn"),
    [
        ({"expanded_use": False}, False),  # never consented (C3.1.7)
        ({"expanded_use": True, "anonymized": at("2026-03-02")}, False),  # erased
        ({"expanded_use": True}, True),  # consent withdrawn in the ledger
    ],
)
def test_c3_1_7_no_text_without_consent(overrides: dict[str, object], withdrawn: bool) -> None:
    ticket = simple(text=CONTACT_TEXT, **overrides)
    assert fact_of(ticket, consent_withdrawn=withdrawn).text is None


def test_a_correction_replaces_the_words_in_the_copy() -> None:
    ticket = simple(expanded_use=True, text="My number is 13812345678, the app is slow.")
    ticket.corrections.append(Correction(text="The app is slow on the checkout page."))
    assert fact_of(ticket).text == "The app is slow on the checkout page."


def test_a_ticket_without_an_analytics_key_has_no_fact() -> None:
    ticket = simple()
    ticket.analytics_id = None
    assert project(ticket, CALENDAR, NOW) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to li.lei+shop@example.com.cn today", "write to [email] today"),
        ("邮箱：wang_fang@163.com，谢谢", "邮箱：[email]，谢谢"),
        ("mail x@y.cn. Then call", "mail [email]. Then call"),
        ("full-width ＬＩ＠ＥＸ．ＣＯＭ here", "full-width [email] here"),
        ("call 13812345678 now", "call [phone] now"),
        ("call 138 1234 5678 now", "call [phone] now"),
        ("call 138-1234-5678 now", "call [phone] now"),
        ("电话+86 138 1234 5678。", "电话[phone]。"),
        ("office (021) 1234 5678 or 010-12345678", "office [phone] or [phone]"),
        ("London +44 20 7946 0958", "London [phone]"),
        ("US +1 (555) 123-4567.", "US [phone]."),
        ("身份证 11010519491231002X 号", "身份证 [id] 号"),
        ("id 110105194912310021", "id [id]"),
        ("card 6222 0212 3456 7890 1", "card [number]"),
        ("order 2026030112345", "order [number]"),
        ("QQ 12345678", "QQ [number]"),
        ("see https://shop.example.com/p?id=1&u=li。thanks", "see [url]。thanks"),
        ("see www.example.com/x now", "see [url] now"),
        ("ping @li_lei_88 on weibo", "ping [handle] on weibo"),
        ("ping ＠李雷 please", "ping [handle] please"),
        ("rated 5/5, paid 1,299.00 on 3/1", "rated 5/5, paid 1,299.00 on 3/1"),
        ("no contact here at all", "no contact here at all"),
    ],
)
def test_c3_2_4_scrub_replaces_contact_details(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_scrub_keeps_markup_as_inert_text() -> None:
    hostile = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    assert scrub(hostile) == hostile  # not parsed, not "sanitized": text stays text
    assert scrub("<b>mail a@b.co</b>") == "<b>mail [email]</b>"


def test_scrub_survives_broken_and_odd_input() -> None:
    assert scrub("a\ud800b\udfffc") == "a\ufffdb\ufffdc"  # lone surrogates
    assert scrub("x\x00y\x1bz\u200b") == "xyz\u200b"  # control characters dropped
    assert scrub("") == ""
    assert len(scrub("a" * (MAX_TEXT * 3))) == MAX_TEXT
    # Long runs that would make a careless pattern backtrack for ages.
    assert scrub("1-" * 5000).startswith("[number]")
    assert scrub("@" * 3000 + "a").endswith("@[handle]")
    assert scrub("a." * 1500 + "@").endswith("@")


def test_backlog_buckets_cover_every_age() -> None:
    assert [bucket_of(age).key for age in (0, 2, 3, 5, 6, 10, 11, 30, 31, 400)] == [
        "0-2",
        "0-2",
        "3-5",
        "3-5",
        "6-10",
        "6-10",
        "11-30",
        "11-30",
        "31+",
        "31+",
    ]
    assert bucket_of(-1) is BACKLOG_BUCKETS[0]  # a clock set back: the youngest


def test_percent() -> None:
    assert percent(0, 0) is None
    assert percent(3, 5) == 60.0
