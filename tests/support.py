"""Test helpers that are real parts of the system, not stand-ins for it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.domain.models import Customer, Message
from bot.services.delivery import SendResult, Sent


@dataclass
class FixedClock:
    """A clock the test moves by hand (due dates, retries, leases)."""

    now: datetime = field(default_factory=lambda: datetime(2026, 3, 2, 2, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass
class RecordingSender:
    """A channel sender that keeps what it was asked to send; results can be scripted."""

    results: list[SendResult] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)
    delay: float = 0.0

    async def send(self, message: Message, customer: Customer) -> SendResult:
        if self.delay:
            await asyncio.sleep(self.delay)
        result = self.results.pop(0) if self.results else Sent()
        if isinstance(result, Sent):
            self.sent.append(message)
        return result

    def texts(self) -> list[str]:
        return [m.text for m in self.sent]
