"""Anonymized analytics against the real database (C3.1.1, C3.2.4, C3.1.7).

The figures are checked against values worked out by hand from tests/analytics_data.py;
the store is checked for what it must never hold.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from bot.app import Container
from bot.domain.analytics import project
from bot.domain.models import Category, Channel, ConsentPurpose, TicketStatus
from bot.domain.text import Text
from tests.analytics_data import (
    CONTACT_TEXT,
    PRIVATE_TEXT,
    SCRUBBED_TEXT,
    at,
    end_of_local_day,
    make_ticket,
    seed,
    store,
)
from tests.services.chat import Chat
from tests.support import FixedClock

D = date.fromisoformat
FACT_FIELDS = {
    "_id",
    "day",
    "channel",
    "category",
    "locale",
    "rating",
    "status",
    "complex",
    "open",
    "response_due_day",
    "first_response_day",
    "on_time",
    "closed_day",
    "suggestion",
    "text",
}


async def raw_facts(container: Container) -> list[dict[str, Any]]:
    return await container.repos.analytics.collection.find({}).to_list()


async def test_c3_1_1_figures_match_hand_computed_values(container: Container) -> None:
    await seed(container)
    analytics = container.analytics
    assert analytics.today() == D("2026-03-02")
    report = await analytics.report(D("2026-02-01"), D("2026-03-02"))
    days = [d.isoformat() for d in report.days]
    assert len(days) == 30
    assert (days[0], days[-1]) == ("2026-02-01", "2026-03-02")

    def nonzero(key: str, among: Any) -> dict[str, int]:
        found = next(s for s in among if s.key == key)
        return {day: n for day, n in zip(days, found.counts, strict=True) if n}

    # Tickets by category and by channel per day (local days: t3 counts on 02-28).
    assert nonzero("logistics", report.by_category) == {"2026-02-25": 1, "2026-03-02": 1}
    assert nonzero("feature_suggestion", report.by_category) == {
        "2026-02-25": 1,
        "2026-02-26": 1,
        "2026-02-28": 1,
    }
    assert nonzero("price", report.by_category) == {"2026-02-20": 1, "2026-03-01": 1}
    assert nonzero("other", report.by_category) == {"2026-02-26": 1}
    assert nonzero("product_quality", report.by_category) == {}
    assert nonzero("telegram", report.by_channel) == {
        "2026-02-20": 1,
        "2026-02-25": 1,
        "2026-02-26": 1,
        "2026-03-02": 1,
    }
    assert nonzero("widget", report.by_channel) == {"2026-02-25": 1, "2026-02-28": 1}
    assert nonzero("form", report.by_channel) == {"2026-03-01": 1}
    assert nonzero("phone", report.by_channel) == {"2026-02-26": 1}
    assert [s.key for s in report.by_category] == [c.value for c in Category]
    assert [s.key for s in report.by_channel] == [c.value for c in Channel]
    assert report.filed == 8  # t6 was filed before the range

    # Ratings 2, 5, 4, 1, 3, 3, 4, 5: 27 / 8.
    assert report.ratings == {1: 1, 2: 1, 3: 2, 4: 2, 5: 2}
    assert report.rating_average == 3.375

    # On time: t1, t3, t9; late: t2 (answered late), t5 (never answered, overdue).
    # Not counted: t4 and t7 (not due yet), t8 (closed without a response).
    assert (report.on_time, report.late) == (3, 2)
    assert report.on_time_percent == 60.0
    assert report.first_response_days == container.settings.first_response_working_days

    # Suggestions: t2 and t9 adopted, t3 declined (and then closed).
    assert (report.adopted, report.declined) == (2, 1)
    assert report.adoption_percent is not None
    assert round(report.adoption_percent, 2) == 66.67

    # Backlog today (03-02): t7 0 days, t4 1, t5 10, t6 51.
    assert [(b.key, n) for b, n in report.backlog] == [
        ("0-2", 2),
        ("3-5", 0),
        ("6-10", 1),
        ("11-30", 0),
        ("31+", 1),
    ]
    # Declined privacy notices: two on 03-01, one on 02-10 (01-05 is before the range).
    refusals = {day: n for day, n in zip(days, report.refusals, strict=True) if n}
    assert refusals == {"2026-02-10": 1, "2026-03-01": 2}


async def test_c3_1_1_a_narrower_range_counts_only_its_days(container: Container) -> None:
    await seed(container)
    report = await container.analytics.report(D("2026-02-25"), D("2026-02-26"))
    assert len(report.days) == 2
    assert report.filed == 4  # t1, t2, t8, t9
    assert report.ratings == {1: 0, 2: 1, 3: 0, 4: 1, 5: 2}
    assert report.rating_average == 4.0
    assert (report.on_time, report.late) == (2, 1)  # t1, t9 on time; t2 late
    assert (report.adopted, report.declined) == (2, 0)
    assert report.adoption_percent == 100.0
    assert report.refusals_total == 0
    assert report.backlog_total == 4  # the backlog is always today's


async def test_c3_1_3_a_deadline_that_passes_without_an_event_counts_as_late(
    container: Container, clock: FixedClock
) -> None:
    await seed(container)
    clock.now = datetime.fromisoformat("2026-03-06T02:00:00+00:00")  # t4 due 03-04, t7 03-05
    report = await container.analytics.report(D("2026-02-05"), D("2026-03-06"))
    assert (report.on_time, report.late) == (3, 4)
    assert report.on_time_percent is not None
    assert round(report.on_time_percent, 2) == 42.86
    # ...and the backlog has aged: t7 4 days, t4 5, t5 14, t6 55.
    assert [n for _, n in report.backlog] == [0, 2, 0, 1, 1]


async def test_an_empty_range_has_no_averages_and_no_division_by_zero(
    container: Container,
) -> None:
    report = await container.analytics.report(D("2025-01-01"), D("2025-01-31"))
    assert report.filed == 0
    assert report.rating_average is None
    assert report.on_time_percent is None
    assert report.adoption_percent is None
    assert sum(report.ratings.values()) == 0


async def test_c3_2_4_analytics_hold_no_personal_data(container: Container) -> None:
    tickets = await seed(container)
    facts = await raw_facts(container)
    assert len(facts) == len(tickets)  # one fact per ticket, none lost
    by_id = {fact["_id"]: fact for fact in facts}
    for ticket in tickets.values():
        assert ticket.analytics_id in by_id
        assert ticket.analytics_id not in (ticket.id, ticket.customer_id)
    everything = repr(facts)
    for ticket in tickets.values():
        for identifier in (ticket.id, ticket.customer_id, ticket.reference, ticket.flow_id):
            assert identifier not in everything
    for contact in ("li.lei@example.com", "138 1234 5678", "wang.fang", "139 8765 4321"):
        assert contact not in everything
    for fact in facts:
        assert set(fact) == FACT_FIELDS  # no staff ids, attachments, timestamps, names
        for value in fact.values():
            assert not isinstance(value, datetime)  # days only, never a time of day
    t3 = by_id[tickets["t3"].analytics_id]
    assert (t3["day"], t3["closed_day"], t3["suggestion"]) == (
        "2026-02-28",
        "2026-03-02",
        "declined",
    )


async def test_c3_1_7_text_is_kept_only_with_expanded_use_and_only_scrubbed(
    container: Container,
) -> None:
    tickets = await seed(container)
    facts = {fact["_id"]: fact for fact in await raw_facts(container)}
    text_of = {name: facts[t.analytics_id]["text"] for name, t in tickets.items()}
    assert text_of["t4"] == SCRUBBED_TEXT  # expanded use: scrubbed copy
    assert text_of["t7"] is None  # no expanded-use consent: never copied
    assert text_of["t8"] is None  # anonymized
    assert [name for name, text in text_of.items() if text is not None] == ["t4"]
    assert CONTACT_TEXT not in repr(facts)
    assert PRIVATE_TEXT not in repr(facts)


async def test_c3_2_4_the_store_follows_a_ticket_through_its_life(
    container: Container, clock: FixedClock
) -> None:
    """Filed in a chat (expanded use given), answered, adopted; the consent withdrawn,
    then the customer's data erased: the statistics keep counting the ticket, without
    its words."""
    chat = Chat(container, "analytics-1", locale="en")
    await chat.happy_path("Mail li.lei@example.com or ring +86 138 1234 5678 about the app.")
    customer = await container.repos.customers.find(Channel.TELEGRAM, "analytics-1")
    assert customer is not None
    ticket = await container.repos.tickets.latest_open(customer.id)
    assert ticket is not None
    assert ticket.expanded_use
    analytics = container.repos.analytics

    async def fact() -> dict[str, Any]:
        found = await analytics.collection.find_one({"_id": ticket.analytics_id})
        assert found is not None
        return found

    filed = await fact()
    assert filed["day"] == "2026-03-02"
    assert filed["status"] == "acknowledged"
    assert filed["open"] is True
    assert filed["on_time"] is None
    assert filed["text"] == "Mail [email] or ring [phone] about the app."

    clock.advance(hours=3)
    await container.tickets.staff_reply(ticket.id, staff_id="staff-1", text="We are on it.")
    answered = await fact()
    assert (answered["first_response_day"], answered["on_time"]) == ("2026-03-02", True)

    clock.advance(days=1)
    await container.tickets.change_status(ticket.id, TicketStatus.ADOPTED, actor="staff-1")
    adopted = await fact()
    assert (adopted["suggestion"], adopted["closed_day"], adopted["open"]) == (
        "adopted",
        "2026-03-03",
        False,
    )

    await container.privacy.withdraw(
        customer, ConsentPurpose.EXPANDED_USE, shown=Text("Withdraw expanded use")
    )
    withdrawn = await fact()
    assert withdrawn["text"] is None
    assert withdrawn["suggestion"] == "adopted"

    await container.privacy.erase(customer)
    erased = await fact()
    assert erased["text"] is None
    assert (erased["rating"], erased["category"], erased["suggestion"]) == (
        2,
        "logistics",
        "adopted",
    )
    report = await container.analytics.report(D("2026-03-02"), D("2026-03-02"))
    assert report.filed == 1
    assert report.adopted == 1
    assert customer.id not in repr(await raw_facts(container))


async def test_c3_1_7_a_withdrawal_in_the_ledger_stops_the_copy_at_once(
    container: Container,
) -> None:
    """Even before the ticket's flag is cleared: the ledger is what is in force."""
    chat = Chat(container, "analytics-2", locale="en")
    await chat.happy_path("The checkout button does nothing at all.")
    customer = await container.repos.customers.find(Channel.TELEGRAM, "analytics-2")
    assert customer is not None
    ticket = await container.repos.tickets.latest_open(customer.id)
    assert ticket is not None
    stored = await container.repos.analytics.get(str(ticket.analytics_id))
    assert stored is not None
    assert stored.text == "The checkout button does nothing at all."
    await container.dialogue.consents.record(
        customer,
        ConsentPurpose.EXPANDED_USE,
        granted=False,
        shown=Text("Withdraw expanded use"),
        locale="en",
        channel=Channel.TELEGRAM,
    )
    await container.analytics.refresh(ticket)
    stored = await container.repos.analytics.get(str(ticket.analytics_id))
    assert stored is not None
    assert stored.text is None


async def test_a_ticket_deleted_altogether_keeps_its_count_without_text(
    container: Container,
) -> None:
    tickets = await seed(container)
    t4 = tickets["t4"]
    await container.repos.tickets.collection.delete_one({"_id": t4.id})
    await container.analytics.refresh(t4)
    fact = await container.repos.analytics.get(str(t4.analytics_id))
    assert fact is not None
    assert fact.text is None
    assert fact.category is Category.PRICE


async def test_rebuild_reprojects_every_ticket_and_drops_orphaned_texts(
    container: Container,
) -> None:
    tickets = await seed(container)
    analytics = container.repos.analytics
    await analytics.collection.delete_many({})
    # A fact whose ticket is gone, still holding a text (e.g. from an older version).
    await analytics.collection.insert_one(
        {
            "_id": "orphan",
            "day": "2026-02-27",
            "channel": "telegram",
            "category": "price",
            "locale": "en",
            "rating": 3,
            "status": "closed",
            "complex": False,
            "open": False,
            "response_due_day": "2026-03-03",
            "text": "left behind",
        }
    )
    assert await container.analytics.rebuild() == len(tickets)
    facts = await raw_facts(container)
    assert len(facts) == len(tickets) + 1
    orphan = next(f for f in facts if f["_id"] == "orphan")
    assert orphan["text"] is None
    report = await container.analytics.report(D("2026-02-01"), D("2026-03-02"))
    assert report.filed == 9  # the orphan still counts: anonymous statistics outlive tickets


async def test_hostile_text_is_stored_inert_and_broken_surrogates_do_not_crash(
    container: Container, clock: FixedClock
) -> None:
    """A text that BSON cannot even encode (a lone surrogate) is projected and stored."""
    ticket = make_ticket(
        created=at("2026-03-01"),
        channel=Channel.WIDGET,
        category=Category.OTHER,
        rating=3,
        due=end_of_local_day("2026-03-04"),
        expanded_use=True,
        text="<script>alert('x')</script> \ud800 mail x@y.cn =HYPERLINK(\"http://e.vil\")",
    )
    fact = project(ticket, container.analytics.calendar, clock())
    assert fact is not None
    await container.repos.analytics.put(fact)
    stored = await container.repos.analytics.get(fact.id)
    assert stored is not None
    assert stored.text == "<script>alert('x')</script> \ufffd mail [email] =HYPERLINK(\"[url]\")"


async def test_facts_are_replaced_not_duplicated_when_events_repeat(
    container: Container,
) -> None:
    tickets = await store(
        container,
        {
            "t": make_ticket(
                created=at("2026-03-01"),
                channel=Channel.TELEGRAM,
                category=Category.PRICE,
                rating=4,
                due=end_of_local_day("2026-03-04"),
            )
        },
    )
    for _ in range(3):
        await container.analytics.ticket_changed(tickets["t"], "note")
    assert await container.repos.analytics.collection.count_documents({}) == 1
