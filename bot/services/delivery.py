"""The delivery service: it owns every outbound message to a customer.

`enqueue` stores the message `pending` with an entry in the outbox collection,
and wakes the dispatcher. `run` claims due messages with a lease, hands each to
its channel's `Sender`, and settles it: sent, retried later with backoff, or
undeliverable. Any number of dispatchers in any number of processes can run:
the lock `delivery:<id>` (a lease: it expires if its holder dies) means one
message is in one sender's hands at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from bot.domain.models import (
    Author,
    Channel,
    Customer,
    Delivery,
    DeliveryState,
    Direction,
    Message,
    new_id,
)
from bot.metrics import Metrics
from bot.storage import DatabaseUnavailable, Repositories

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# How often a running dispatcher puts back outbox entries a dead process did not write
# (MessageRepository.restore_outbox, a scan of all messages); also once at its start.
RESTORE_SECONDS = 300.0


@dataclass(frozen=True)
class Sent:
    pass


@dataclass(frozen=True)
class RetryLater:
    error: str
    after_seconds: float | None = None  # the channel said when (Telegram's retry_after)
    # The channel asked us to slow down (HTTP 429): nothing is wrong with the message, so
    # the wait does not use up one of its attempts and a long storm loses nothing.
    throttled: bool = False
    # The channel is unreachable (network, server errors): the message is fine, so it is
    # tried with growing backoff until it is `give_up` old, however many attempts that takes.
    transient: bool = False


@dataclass(frozen=True)
class Undeliverable:
    error: str  # e.g. the customer blocked the bot, the chat is gone


SendResult = Sent | RetryLater | Undeliverable


class Sender(Protocol):
    """A channel's way of putting one stored message in front of the customer."""

    async def send(self, message: Message, customer: Customer) -> SendResult: ...


def backoff_seconds(attempt: int, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter: 1, 2, 4 ... seconds, capped."""
    return random.uniform(0.5, 1.0) * min(cap, 2.0 ** max(0, attempt - 1))  # noqa: S311


class DeliveryService:
    def __init__(
        self,
        repos: Repositories,
        metrics: Metrics,
        clock: Clock,
        *,
        lease_seconds: float = 30.0,
        max_attempts: int = 12,
        poll_seconds: float = 0.5,
        give_up_hours: float = 72.0,
    ) -> None:
        self.repos = repos
        self.metrics = metrics
        self.clock = clock
        self.senders: dict[Channel, Sender] = {}
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.give_up = timedelta(hours=give_up_hours)
        self.poll_seconds = poll_seconds
        self.owner = f"dispatcher-{new_id()[:12]}"
        self._wake = asyncio.Event()
        self._stopping = False
        # Called with the outbox's restore (at start, then every RESTORE_SECONDS): each
        # queues messages that a process which died should have queued; returns how many.
        self.restorers: list[Callable[[], Awaitable[int]]] = []

    def register(self, channel: Channel, sender: Sender) -> None:
        self.senders[channel] = sender

    async def enqueue(
        self,
        customer: Customer,
        text: str,
        *,
        kind: str,
        ticket_id: str | None = None,
        author: Author = Author.BOT,
        staff_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Message:
        """Store an outbound message (durably, before anything is sent) and wake the sender."""
        message = Message(
            customer_id=customer.id,
            channel=customer.channel,
            ticket_id=ticket_id,
            direction=Direction.OUTBOUND,
            author=author,
            kind=kind,
            text=text,
            staff_id=staff_id,
            idempotency_key=idempotency_key or new_id(),
            created_at=self.clock(),
            delivery=Delivery(next_attempt_at=self.clock()),
        )
        stored = await self.repos.messages.append(message)
        self._wake.set()
        return stored.item

    async def dispatch_once(self) -> bool:
        """Send and settle one due message. False when nothing is due (or all are taken)."""
        now = self.clock()
        for listed in await self.repos.messages.due(now, limit=20):
            # One customer's messages arrive in the order they were written: the head of
            # their queue goes first, even when it is beyond this batch; the others wait for
            # it outside the due list. Left in it, they filled every batch while their heads
            # waited out a 429, and the heads were never reached again.
            candidate = await self.repos.messages.first_pending(listed.customer_id)
            if candidate is None:
                continue
            if candidate.delivery.next_attempt_at > now:
                after = candidate.delivery.next_attempt_at + timedelta(milliseconds=1)
                await self.repos.messages.defer(listed.id, at=after)
                continue
            lock = await self.repos.locks.acquire(
                f"delivery:{candidate.id}", self.lease, now=now, owner=self.owner
            )
            if lock is None:
                continue  # another dispatcher has it
            try:
                # Re-read under the lock: it may have been sent since the candidate was listed.
                message = await self.repos.messages.get(candidate.id)
                if (
                    message is None
                    or message.delivery.state is not DeliveryState.PENDING
                    or message.delivery.next_attempt_at > now
                ):
                    continue
                await self._send(message)
                return True
            finally:
                await self.repos.locks.release(lock)
        return False

    async def _send(self, message: Message) -> None:
        channel = message.channel.value
        customer = await self.repos.customers.get(message.customer_id)
        sender = self.senders.get(message.channel)
        result: SendResult
        if customer is None:
            result = Undeliverable("customer erased")  # nobody is left to tell
        elif sender is None:
            result = RetryLater(f"no sender for channel {channel} in this process", transient=True)
        else:
            try:
                result = await sender.send(message, customer)
            except Exception as exc:  # a sender bug must not stop delivery of everything else
                log.exception("sender failed", extra={"message_id": message.id})
                result = RetryLater(f"sender error: {type(exc).__name__}")
        await self._settle(message, result)

    async def _settle(self, message: Message, result: SendResult) -> None:
        channel = message.channel.value
        now = self.clock()
        attempts = message.delivery.attempts + 1
        if isinstance(result, RetryLater) and result.throttled:
            attempts = message.delivery.attempts
        if isinstance(result, Sent):
            await self.repos.messages.mark_sent(message.id, attempts=attempts, at=now)
            self.metrics.deliveries.labels(channel, "sent").inc()
            self.metrics.delivery_seconds.labels(channel).observe(
                max(0.0, (now - message.created_at).total_seconds())
            )
        elif isinstance(result, Undeliverable) or self._exhausted(message, result, attempts, now):
            await self.repos.messages.mark_undeliverable(
                message.id, attempts=attempts, error=result.error
            )
            self.metrics.deliveries.labels(channel, "undeliverable").inc()
            log.warning(
                "message undeliverable", extra={"message_id": message.id, "channel": channel}
            )
        else:
            delay = result.after_seconds
            if delay is None:
                delay = backoff_seconds(attempts)
            await self.repos.messages.schedule_retry(
                message.id, attempts=attempts, at=now + timedelta(seconds=delay), error=result.error
            )
            self.metrics.deliveries.labels(channel, "retry").inc()

    def _exhausted(
        self, message: Message, result: RetryLater, attempts: int, now: datetime
    ) -> bool:
        if result.transient:
            return now - message.created_at >= self.give_up
        return attempts >= self.max_attempts

    async def drain(self) -> int:
        """Send everything due now; returns how many messages were settled."""
        count = 0
        while not self._stopping and await self.dispatch_once():
            count += 1
        return count

    async def run(self) -> None:
        """The dispatcher loop: drain, then sleep until woken or the poll interval passes.

        It ends after stop(), between two messages: cancelling it in the middle of a
        database call can leave the driver's connection half used (and a cancellation
        that the driver reports as a connection error would be swallowed here).
        """
        self._stopping = False
        restored_at: float | None = None
        while not self._stopping:
            try:
                if restored_at is None or time.monotonic() - restored_at >= RESTORE_SECONDS:
                    if restored := await self.repos.messages.restore_outbox():
                        log.info("outbox entries restored", extra={"count": restored})
                    for restore in self.restorers:
                        if restored := await restore():
                            log.info("messages queued late", extra={"count": restored})
                    restored_at = time.monotonic()
                await self.drain()
            except DatabaseUnavailable:
                log.warning("delivery paused: database unavailable")
            except Exception:  # keep delivering: one bad document must not stop the loop
                log.exception("dispatcher error")
            if self._stopping:
                break
            self._wake.clear()
            self.metrics.delivery_idle.set(1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self.metrics.delivery_idle.set(0)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
