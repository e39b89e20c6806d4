"""Anonymized analytics (C3.1.1, C3.2.4): keeps the analytics store in step with the
tickets, and answers the supervisors' questions from it.

The service is a ticket listener: on every event it reads the ticket again and
stores its projection (bot.domain.analytics.project) under the ticket's random
analytics id. An erasure or a consent withdrawal is a `ticket_changed` too
("anonymized", "consent"), so the copy of the text goes with the next projection.
The figures are counted from the store alone: nothing here reads a ticket, a
customer or a message to answer them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from bot.domain.analytics import (
    BACKLOG_BUCKETS,
    AgeBucket,
    Suggestion,
    bucket_of,
    percent,
    project,
)
from bot.domain.calendar import WorkingCalendar
from bot.domain.models import (
    Category,
    Channel,
    ConsentPurpose,
    Customer,
    Message,
    Ticket,
    TicketStatus,
)
from bot.services.delivery import Clock
from bot.storage import Repositories
from bot.storage.locks import Busy
from bot.storage.tickets import TicketQuery

log = logging.getLogger(__name__)

REBUILD_PAGE = 200
# Two events of one ticket re-project one after the other, so the later read wins.
LOCK_WAIT = timedelta(seconds=5)
RATINGS = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Series:
    """Counts per day, aligned with `Report.days`, for one category, channel or other key."""

    key: str
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class Report:
    """Every figure of the analytics page for tickets filed in [start, end] (local days);
    the backlog is the open tickets today, whenever they were filed."""

    start: date
    end: date
    today: date
    days: tuple[date, ...]
    by_category: tuple[Series, ...]  # every category, in Category order
    by_channel: tuple[Series, ...]  # every channel, in Channel order
    filed_per_day: tuple[int, ...]
    ratings: dict[int, int]  # 1..5 -> tickets
    on_time: int
    late: int
    first_response_days: int  # X of C3.1.3
    adopted: int
    declined: int
    backlog: tuple[tuple[AgeBucket, int], ...]
    refusals: tuple[int, ...]  # anonymous declined privacy notices per day

    @property
    def filed(self) -> int:
        return sum(self.filed_per_day)

    @property
    def rated(self) -> int:
        return sum(self.ratings.values())

    @property
    def rating_average(self) -> float | None:
        """From sums and counts (FerretDB has no $avg)."""
        rated = self.rated
        return None if rated == 0 else sum(r * n for r, n in self.ratings.items()) / rated

    @property
    def on_time_percent(self) -> float | None:
        return percent(self.on_time, self.on_time + self.late)

    @property
    def adoption_percent(self) -> float | None:
        return percent(self.adopted, self.adopted + self.declined)

    @property
    def backlog_total(self) -> int:
        return sum(n for _, n in self.backlog)

    @property
    def refusals_total(self) -> int:
        return sum(self.refusals)


def _series(
    keys: tuple[str, ...], days: tuple[date, ...], rows: list[tuple[str, str, int]]
) -> tuple[Series, ...]:
    """Rows of (day, key, count) as one aligned series per known key; values the store
    holds that are no known key (a hand-edited document) are left out."""
    index = {day.isoformat(): i for i, day in enumerate(days)}
    table = {key: [0] * len(days) for key in keys}
    for day, key, n in rows:
        if key in table and day in index:
            table[key][index[day]] += n
    return tuple(Series(key, tuple(table[key])) for key in keys)


class AnalyticsService:
    def __init__(
        self,
        repos: Repositories,
        calendar: WorkingCalendar,
        clock: Clock,
        *,
        first_response_days: int,
    ) -> None:
        self.repos = repos
        self.calendar = calendar
        self.clock = clock
        self.first_response_days = first_response_days

    # ------------------------------------------------------------ keeping in step

    async def ticket_filed(self, ticket: Ticket, customer: Customer) -> None:
        await self.refresh(ticket)

    async def customer_message(self, ticket: Ticket, message: Message) -> None:
        # `ticket` is as it was before the message. A message changes no figure unless it
        # wakes a ticket that waited for the customer (its status moves on); skipping the
        # rest keeps five database round trips off every chat message.
        if ticket.status is TicketStatus.WAITING_FOR_CUSTOMER:
            await self.refresh(ticket)

    async def staff_message(self, ticket: Ticket, message: Message) -> None:
        await self.refresh(ticket)

    async def ticket_changed(self, ticket: Ticket, change: str) -> None:
        await self.refresh(ticket)

    async def _consent_withdrawn(self, customer_id: str) -> bool:
        """The customer has withdrawn expanded use since filing (C3.1.7)."""
        current = (await self.repos.consents.current(customer_id)).get(ConsentPurpose.EXPANDED_USE)
        return current is not None and not current.granted

    async def _store(self, ticket: Ticket, withdrawn: bool | None = None) -> bool:
        if withdrawn is None:
            withdrawn = ticket.expanded_use and await self._consent_withdrawn(ticket.customer_id)
        fact = project(ticket, self.calendar, self.clock(), consent_withdrawn=withdrawn)
        if fact is None:
            return False
        await self.repos.analytics.put(fact)
        return True

    async def refresh(self, ticket: Ticket) -> None:
        """Store the ticket's projection as it is now (read again: the event's copy may be
        older than the stored ticket)."""
        try:
            async with self.repos.locks.hold(f"analytics:{ticket.id}", wait=LOCK_WAIT):
                current = await self.repos.tickets.get(ticket.id)
                if current is None:
                    # Gone altogether: the statistics keep counting it, without any text.
                    if ticket.analytics_id is not None:
                        await self.repos.analytics.forget_text(ticket.analytics_id)
                    return
                await self._store(current)
        except Busy:
            log.warning("analytics projection skipped: ticket busy", extra={"ticket_id": ticket.id})

    async def rebuild(self) -> int:
        """Project every ticket again (maintenance: after a change of the projection, or to
        repair). Returns how many facts were stored. Copies of text whose ticket no longer
        exists are dropped."""
        stored = 0
        kept_text: set[str] = set()
        withdrawn: dict[str, bool] = {}
        skip = 0
        while True:
            page, _ = await self.repos.tickets.search(
                TicketQuery(statuses=None, skip=skip, limit=REBUILD_PAGE)
            )
            for ticket in page:
                customer_id = ticket.customer_id
                if ticket.expanded_use and customer_id not in withdrawn:
                    withdrawn[customer_id] = await self._consent_withdrawn(customer_id)
                if await self._store(ticket, withdrawn.get(customer_id, False)):
                    stored += 1
                    if ticket.analytics_id is not None:
                        kept_text.add(ticket.analytics_id)
            if len(page) < REBUILD_PAGE:
                break
            skip += REBUILD_PAGE
        for fact_id in await self.repos.analytics.ids_with_text():
            if fact_id not in kept_text:
                await self.repos.analytics.forget_text(fact_id)
        log.info("analytics rebuilt", extra={"facts": stored})
        return stored

    # ------------------------------------------------------------ the figures

    def today(self) -> date:
        return self.calendar.local_date(self.clock())

    async def report(self, start: date, end: date) -> Report:
        """The figures for tickets filed from `start` to `end`, both included (local days)."""
        if end < start:
            raise ValueError("the range ends before it starts")
        analytics = self.repos.analytics
        today = self.today()
        days = tuple(start + timedelta(days=n) for n in range((end - start).days + 1))
        categories = tuple(c.value for c in Category)
        channels = tuple(c.value for c in Channel)
        by_category = _series(categories, days, await analytics.filed_by(start, end, "category"))
        by_channel = _series(channels, days, await analytics.filed_by(start, end, "channel"))
        filed = tuple(sum(s.counts[i] for s in by_category) for i in range(len(days)))
        ratings = await analytics.ratings(start, end)
        on_time, late = await analytics.first_responses(start, end, today)
        suggestions = await analytics.suggestions(start, end)
        backlog = {bucket.key: 0 for bucket in BACKLOG_BUCKETS}
        for day, n in await analytics.open_by_day():
            try:
                filed_on = date.fromisoformat(day)
            except ValueError:
                continue
            backlog[bucket_of((today - filed_on).days).key] += n
        refusals = _series(
            ("refused",),
            days,
            [(day, "refused", n) for day, n in await analytics.refusals_by_day(start, end)],
        )[0]
        return Report(
            start=start,
            end=end,
            today=today,
            days=days,
            by_category=by_category,
            by_channel=by_channel,
            filed_per_day=filed,
            ratings={r: ratings.get(r, 0) for r in RATINGS},
            on_time=on_time,
            late=late,
            first_response_days=self.first_response_days,
            adopted=suggestions.get(Suggestion.ADOPTED.value, 0),
            declined=suggestions.get(Suggestion.DECLINED.value, 0),
            backlog=tuple((bucket, backlog[bucket.key]) for bucket in BACKLOG_BUCKETS),
            refusals=refusals.counts,
        )
