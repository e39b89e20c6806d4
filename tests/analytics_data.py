"""A known set of tickets for the analytics tests, with times chosen by hand.

The company's zone is Asia/Shanghai (UTC+8); the tests' clock stands at
2026-03-02 02:00 UTC, 10:00 local, so "today" is 2026-03-02 and the default range is
2026-02-01 to 2026-03-02. Each ticket's comment says what it adds to the figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from bot.app import Container
from bot.domain.models import Category, Channel, Ticket, TicketStatus, TimelineEvent, new_id

S = TicketStatus

CONTACT_TEXT = "Call me on 138 1234 5678 or write to li.lei@example.com, the app crashes."
SCRUBBED_TEXT = "Call me on [phone] or write to [email], the app crashes."
PRIVATE_TEXT = "Without consent: wang.fang@example.org, 139 8765 4321."


def at(day: str, hour: int = 4, minute: int = 0) -> datetime:
    """A UTC time on an ISO day."""
    y, m, d = (int(part) for part in day.split("-"))
    return datetime(y, m, d, hour, minute, tzinfo=UTC)


def end_of_local_day(day: str) -> datetime:
    """23:59:59 in Shanghai on `day`, as UTC: how due dates are stored."""
    return at(day, 15, 59).replace(second=59)


def make_ticket(
    *,
    created: datetime,
    channel: Channel,
    category: Category,
    rating: int,
    due: datetime,
    changes: Sequence[tuple[datetime, TicketStatus]] = (),
    first_response: datetime | None = None,
    expanded_use: bool = False,
    text: str = "The parcel arrived two days late.",
    anonymized: datetime | None = None,
    locale: str = "en",
) -> Ticket:
    events = [
        TimelineEvent(at=created, kind="created", actor="customer"),
        TimelineEvent(
            at=created,
            kind="status",
            actor="system",
            from_status=S.RECEIVED,
            to_status=S.ACKNOWLEDGED,
        ),
    ]
    status = S.ACKNOWLEDGED
    for when, target in changes:
        events.append(
            TimelineEvent(
                at=when, kind="status", actor="staff-1", from_status=status, to_status=target
            )
        )
        status = target
    return Ticket(
        customer_id=new_id(),
        channel=channel,
        locale=locale,
        category=category,
        rating=rating,
        text=text,
        expanded_use=expanded_use,
        status=status,
        created_at=created,
        updated_at=events[-1].at,
        response_due=due,
        first_response_at=first_response,
        events=events,
        anonymized_at=anonymized,
    )


def known_tickets() -> dict[str, Ticket]:
    return {
        # 02-25, on time (responded 02-26, due 02-28), resolved 02-27.
        "t1": make_ticket(
            created=at("2026-02-25"),
            channel=Channel.TELEGRAM,
            category=Category.LOGISTICS,
            rating=2,
            due=end_of_local_day("2026-02-28"),
            first_response=at("2026-02-26", 5),
            changes=[(at("2026-02-26", 5), S.IN_PROGRESS), (at("2026-02-27", 3), S.RESOLVED)],
        ),
        # 02-25, late (responded 03-01, due 02-27), adopted.
        "t2": make_ticket(
            created=at("2026-02-25", 6),
            channel=Channel.WIDGET,
            category=Category.FEATURE_SUGGESTION,
            rating=5,
            due=end_of_local_day("2026-02-27"),
            first_response=at("2026-03-01", 2),
            changes=[(at("2026-03-01", 2), S.ADOPTED)],
        ),
        # 17:30 UTC on 02-27 is 01:30 on 02-28 in Shanghai: filed on 02-28. On time,
        # declined on 03-01, then closed on 03-02: still a declined suggestion.
        "t3": make_ticket(
            created=at("2026-02-27", 17, 30),
            channel=Channel.WIDGET,
            category=Category.FEATURE_SUGGESTION,
            rating=4,
            due=end_of_local_day("2026-03-04"),
            first_response=at("2026-03-01", 3),
            changes=[(at("2026-03-01", 3), S.DECLINED), (at("2026-03-02", 1), S.CLOSED)],
        ),
        # 03-01, open, not due yet (not counted for on time), expanded use: text scrubbed.
        "t4": make_ticket(
            created=at("2026-03-01", 3),
            channel=Channel.FORM,
            category=Category.PRICE,
            rating=1,
            due=end_of_local_day("2026-03-04"),
            expanded_use=True,
            text=CONTACT_TEXT,
        ),
        # 02-20, open, no response and due 02-24: late. 10 days old today.
        "t5": make_ticket(
            created=at("2026-02-20", 3),
            channel=Channel.TELEGRAM,
            category=Category.PRICE,
            rating=3,
            due=end_of_local_day("2026-02-24"),
        ),
        # 01-10: before the range; open, 51 days old today.
        "t6": make_ticket(
            created=at("2026-01-10", 3),
            channel=Channel.TELEGRAM,
            category=Category.OTHER,
            rating=5,
            due=end_of_local_day("2026-01-13"),
        ),
        # 03-02 (09:00 local), open, not due; no expanded use: its text is never copied.
        "t7": make_ticket(
            created=at("2026-03-02", 1),
            channel=Channel.TELEGRAM,
            category=Category.LOGISTICS,
            rating=3,
            due=end_of_local_day("2026-03-05"),
            text=PRIVATE_TEXT,
        ),
        # 02-26, closed without a response (not counted), anonymized: no text.
        "t8": make_ticket(
            created=at("2026-02-26", 2),
            channel=Channel.PHONE,
            category=Category.OTHER,
            rating=4,
            due=end_of_local_day("2026-03-03"),
            changes=[(at("2026-02-26", 8), S.CLOSED)],
            expanded_use=True,
            text="",
            anonymized=at("2026-02-28"),
        ),
        # 02-26, on time, adopted 02-27.
        "t9": make_ticket(
            created=at("2026-02-26", 3),
            channel=Channel.TELEGRAM,
            category=Category.FEATURE_SUGGESTION,
            rating=5,
            due=end_of_local_day("2026-03-03"),
            first_response=at("2026-02-27", 3),
            changes=[(at("2026-02-27", 3), S.ADOPTED)],
        ),
    }


async def store(container: Container, tickets: dict[str, Ticket]) -> dict[str, Ticket]:
    """Insert the tickets (references are given here), then project them all."""
    stored: dict[str, Ticket] = {}
    for name, ticket in tickets.items():
        inserted = await container.repos.tickets.add(
            ticket, prefix="FB", year=ticket.created_at.year
        )
        stored[name] = inserted.item
    await container.analytics.rebuild()
    return stored


async def seed(container: Container) -> dict[str, Ticket]:
    """The known tickets and declined privacy notices (two on 03-01, one on 02-10, one on
    01-05, before the default range)."""
    refusals = container.repos.refusals
    for day, channel in (
        ("2026-03-01", Channel.TELEGRAM),
        ("2026-03-01", Channel.WIDGET),
        ("2026-02-10", Channel.WIDGET),
        ("2026-01-05", Channel.TELEGRAM),
    ):
        await refusals.record(at(day).date(), channel)
    return await store(container, known_tickets())
