"""Consent records, the same from every channel: the append-only ledger (C6.2, C3.1.7)."""

from __future__ import annotations

from bot.domain.calendar import WorkingCalendar
from bot.domain.models import Channel, ConsentPurpose, ConsentRecord, Customer
from bot.domain.privacy import NOTICE_VERSION, text_hash
from bot.domain.text import Text
from bot.i18n import I18n
from bot.metrics import Metrics
from bot.services.delivery import Clock
from bot.storage import Repositories


class ConsentService:
    def __init__(
        self,
        repos: Repositories,
        i18n: I18n,
        metrics: Metrics,
        clock: Clock,
        calendar: WorkingCalendar,
    ) -> None:
        self.repos = repos
        self.i18n = i18n
        self.metrics = metrics
        self.clock = clock
        self.calendar = calendar

    async def record(
        self,
        customer: Customer,
        purpose: ConsentPurpose,
        *,
        granted: bool,
        shown: Text,
        locale: str,
        channel: Channel,
    ) -> None:
        """Append a decision with the hash of the text exactly as the customer saw it."""
        await self.repos.consents.append(
            ConsentRecord(
                customer_id=customer.id,
                purpose=purpose,
                granted=granted,
                notice_version=NOTICE_VERSION,
                text_hash=text_hash(self.i18n.render(locale, shown)),
                locale=locale,
                channel=channel,
                at=self.clock(),
            )
        )
        await self.repos.fence(customer.id)  # an erasure began meanwhile: taken back

    async def refused(self, channel: Channel) -> None:
        """Processing declined: an anonymous count per day, nothing about the person."""
        await self.repos.refusals.record(self.calendar.local_date(self.clock()), channel)
        self.metrics.consent_refusals.labels(channel.value).inc()
