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
from typing import Protocol, Required, TypedDict, Unpack

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
from bot.storage.database import Inserted
from bot.storage.locks import KeptLock

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# How often a running dispatcher puts back outbox entries a dead process did not write
# (MessageRepository.restore_outbox, a scan of all messages); also once at its start.
RESTORE_SECONDS = 300.0


# A customer's messages behind a head that another dispatcher holds are left out of the
# due list for this long (dispatch_once).
FOLLOWER_PAUSE = timedelta(seconds=1)


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
    # Parts of a long text the channel took before the failure (Delivery.parts_sent).
    parts_sent: int | None = None


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


class Outbound(TypedDict, total=False):
    """What `DeliveryService.enqueue` takes besides the customer and the text."""

    kind: Required[str]
    ticket_id: str | None
    author: Author
    staff_id: str | None
    idempotency_key: str | None


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

    async def enqueue(self, customer: Customer, text: str, **fields: Unpack[Outbound]) -> Message:
        """Store an outbound message (durably, before anything is sent) and wake the sender."""
        return (await self.enqueue_once(customer, text, **fields)).item

    async def enqueue_once(
        self,
        customer: Customer,
        text: str,
        *,
        kind: str,
        ticket_id: str | None = None,
        author: Author = Author.BOT,
        staff_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Inserted[Message]:
        """`enqueue`, saying whether the message is new (False: its key was stored before)."""
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
        await self.repos.fence(customer.id)  # an erasure began meanwhile: taken back
        self._wake.set()
        return stored

    async def dispatch_once(self) -> bool:
        """Send and settle one due message. False when nothing is due (or all are taken)."""
        now = self.clock()
        held_elsewhere: set[str] = set()  # customers whose head another dispatcher has
        for listed in await self.repos.messages.due(now, limit=20):
            if listed.customer_id in held_elsewhere:
                # Behind a head in another dispatcher's hands (sending, or its process died
                # and the lease has yet to run out): out of the due list for a moment, so
                # that a customer with a long queue cannot fill every batch and hold up
                # everyone else's messages for the lease.
                await self.repos.messages.defer(listed.id, at=now + FOLLOWER_PAUSE)
                continue
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
            if lock is None:  # another dispatcher has it
                held_elsewhere.add(listed.customer_id)
                if listed.id != candidate.id:
                    await self.repos.messages.defer(listed.id, at=now + FOLLOWER_PAUSE)
                continue
            lease = KeptLock(self.repos.locks, lock, self.lease, self.clock)
            async with lease:
                # Re-read under the lock: it may have been sent since the candidate was listed.
                message = await self.repos.messages.get(candidate.id)
                if (
                    message is None
                    or message.delivery.state is not DeliveryState.PENDING
                    or message.delivery.next_attempt_at > now
                ):
                    continue
                await self._send(message, lease)
                return True
        return False

    async def _send(self, message: Message, lease: KeptLock) -> None:
        channel = message.channel.value
        customer = await self.repos.customers.get(message.customer_id)
        sender = self.senders.get(message.channel)
        result: SendResult
        if customer is None or customer.erasing_since is not None:
            # Nobody is left to tell; or their erasure has begun: what is queued for them
            # goes with it (a message queued meanwhile is being taken back by its writer).
            result = Undeliverable("customer erased")
        elif sender is None:
            result = RetryLater(f"no sender for channel {channel} in this process", transient=True)
        else:
            try:
                result = await sender.send(message, customer)
            except Exception as exc:  # a sender bug must not stop delivery of everything else
                log.exception("sender failed", extra={"message_id": message.id})
                result = RetryLater(f"sender error: {type(exc).__name__}")
        await self._settle(message, result, lease)

    async def _settle(self, message: Message, result: SendResult, lease: KeptLock) -> None:
        channel = message.channel.value
        now = self.clock()
        attempts = message.delivery.attempts + 1
        if isinstance(result, RetryLater) and result.throttled:
            attempts = message.delivery.attempts
        if isinstance(result, Sent):
            await self._mark_sent(message, attempts, now, lease)
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
            parts = message.delivery.parts_sent if result.parts_sent is None else result.parts_sent
            await self.repos.messages.schedule_retry(
                message.id,
                attempts=attempts,
                at=now + timedelta(seconds=delay),
                error=result.error,
                parts_sent=parts,
            )
            self.metrics.deliveries.labels(channel, "retry").inc()

    async def _mark_sent(
        self, message: Message, attempts: int, now: datetime, lease: KeptLock
    ) -> None:
        """The channel took the message: record it, however long the database takes to
        come back, while the lease is kept. Released unrecorded, the message would still
        be pending, and the next dispatcher would send it again at once."""
        pause = 0.2
        while True:
            try:
                await self.repos.messages.mark_sent(message.id, attempts=attempts, at=now)
                break
            except DatabaseUnavailable:
                if self._stopping or lease.lost:
                    # Left to the lease (not released): nobody sends it again before it
                    # runs out, and the mark may still land meanwhile.
                    lease.keep_on_exit()
                    raise
                log.warning("sent, not yet recorded; retrying", extra={"message_id": message.id})
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)

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
