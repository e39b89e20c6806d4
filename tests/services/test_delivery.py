"""The delivery service: stored first, sent once, retried, or marked undeliverable."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import socketio
from pymongo.errors import AutoReconnect

from bot.app import Container
from bot.channels.widget import WidgetSender
from bot.config import Settings
from bot.domain.models import Channel, Customer, DeliveryState, Message
from bot.metrics import Metrics
from bot.services.delivery import DeliveryService, RetryLater, SendResult, Sent, Undeliverable
from bot.sharing import socketio_manager
from bot.storage import Database, Repositories
from tests.redis_server import redis_server
from tests.support import FixedClock, RecordingSender, configured, eventually


async def customer(container: Container, external_id: str = "42") -> Customer:
    return await container.repos.customers.get_or_create(Channel.TELEGRAM, external_id, "en")


async def stored_message(container: Container, message_id: str) -> Message:
    stored = await container.repos.messages.get(message_id)
    assert stored is not None
    return stored


async def test_c3_2_2_a_message_is_stored_before_it_is_sent(container: Container) -> None:
    message = await container.delivery.enqueue(await customer(container), "hello", kind="reply")
    stored = await stored_message(container, message.id)
    assert stored.delivery.state is DeliveryState.PENDING
    assert stored.seq == 1


async def test_c3_2_6_nothing_is_sent_to_a_customer_whose_erasure_has_begun(
    container: Container, sender: RecordingSender
) -> None:
    """A message queued as the erasure began is taken back by its writer a moment later;
    a dispatcher that took it first sent it to someone being erased."""
    someone = await customer(container)
    message = await container.delivery.enqueue(someone, "hello", kind="reply")
    await container.repos.customers.update_fields(
        someone.id, erasing_since=container.privacy.clock()
    )
    assert await container.delivery.drain() == 1
    assert sender.sent == []
    stored = await stored_message(container, message.id)
    assert stored.delivery.state is DeliveryState.UNDELIVERABLE


async def test_retry_after_is_honoured_and_nothing_is_lost(
    container: Container, clock: FixedClock, sender: RecordingSender
) -> None:
    sender.results = [RetryLater("429", after_seconds=20), RetryLater("timeout")]
    message = await container.delivery.enqueue(await customer(container), "hi", kind="reply")
    assert await container.delivery.drain() == 1
    stored = await stored_message(container, message.id)
    assert stored.delivery.attempts == 1
    assert stored.delivery.last_error == "429"
    assert (stored.delivery.next_attempt_at - clock()).total_seconds() == 20
    clock.advance(seconds=10)
    assert await container.delivery.drain() == 0  # not due yet
    clock.advance(seconds=11)
    assert await container.delivery.drain() == 1  # the timeout: backoff
    clock.advance(seconds=5)
    assert await container.delivery.drain() == 1
    stored = await stored_message(container, message.id)
    assert stored.delivery.state is DeliveryState.SENT
    assert stored.delivery.attempts == 3
    assert [m.id for m in sender.sent] == [message.id]


async def test_a_permanent_failure_is_marked_for_staff_to_see(
    container: Container, sender: RecordingSender
) -> None:
    sender.results = [Undeliverable("bot blocked by the user")]
    message = await container.delivery.enqueue(await customer(container), "hi", kind="reply")
    await container.delivery.drain()
    stored = await stored_message(container, message.id)
    assert stored.delivery.state is DeliveryState.UNDELIVERABLE
    assert stored.delivery.last_error == "bot blocked by the user"
    assert await container.delivery.drain() == 0


async def test_too_many_attempts_end_as_undeliverable(
    container: Container, clock: FixedClock, sender: RecordingSender
) -> None:
    container.delivery.max_attempts = 3
    sender.results = [RetryLater("down", after_seconds=1)] * 5
    message = await container.delivery.enqueue(await customer(container), "hi", kind="reply")
    for _ in range(5):
        await container.delivery.drain()
        clock.advance(seconds=2)
    stored = await stored_message(container, message.id)
    assert stored.delivery.state is DeliveryState.UNDELIVERABLE
    assert stored.delivery.attempts == 3


async def test_a_long_rate_limit_storm_uses_up_no_attempts(
    container: Container, clock: FixedClock, sender: RecordingSender
) -> None:
    container.delivery.max_attempts = 3
    sender.results = [RetryLater("429", after_seconds=1, throttled=True)] * 10
    message = await container.delivery.enqueue(await customer(container), "hi", kind="reply")
    for _ in range(11):
        await container.delivery.drain()
        clock.advance(seconds=2)
    stored = await stored_message(container, message.id)
    assert stored.delivery.state is DeliveryState.SENT
    assert stored.delivery.attempts == 1
    assert [m.id for m in sender.sent] == [message.id]


async def test_several_dispatchers_never_send_twice(
    container: Container, settings: Settings, clock: FixedClock
) -> None:
    # One customer's messages go out one by one (in order); several customers' in parallel.
    people = [await customer(container, str(n)) for n in range(4)]
    for n in range(12):
        await container.delivery.enqueue(people[n % 4], f"message {n}", kind="reply")
    # Four dispatchers, as if in four processes, each with its own identity.
    senders = [RecordingSender(delay=0.01) for _ in range(4)]
    dispatchers = []
    for sender in senders:
        dispatcher = DeliveryService(container.repos, container.metrics, clock)
        dispatcher.register(Channel.TELEGRAM, sender)
        dispatchers.append(dispatcher)
    for _ in range(5):
        await asyncio.gather(*(d.drain() for d in dispatchers))
        if sum(len(s.sent) for s in senders) >= 12:
            break
        # A message behind a head another dispatcher held stepped aside for a second
        # (FOLLOWER_PAUSE): due again once the test's clock moves.
        clock.advance(seconds=2)
    sent = [m.id for s in senders for m in s.sent]
    assert len(sent) == 12
    assert len(set(sent)) == 12
    assert sum(1 for s in senders if s.sent) > 1  # the work really was shared


async def test_two_processes_dispatching_on_one_database_never_send_twice(
    container: Container, settings: Settings, mongo_uri: str, clock: FixedClock
) -> None:
    """Two running dispatchers, each with its own connection (as two service processes
    have), while both processes keep writing messages: each message goes out once."""
    other_db = Database(mongo_uri, settings.mongodb_database)
    try:
        processes = [container.repos, Repositories.create(other_db)]
        senders = [RecordingSender(delay=0.005) for _ in processes]
        dispatchers = []
        for repos, sender in zip(processes, senders, strict=True):
            dispatcher = DeliveryService(repos, Metrics(), clock, poll_seconds=0.02)
            dispatcher.register(Channel.TELEGRAM, sender)
            dispatchers.append(dispatcher)
        loops = [asyncio.create_task(d.run()) for d in dispatchers]
        people = [await customer(container, str(n)) for n in range(6)]
        written = []
        for n in range(30):  # written by both processes, in turn
            dispatcher = dispatchers[n % 2]
            written.append(await dispatcher.enqueue(people[n % 6], f"m{n}", kind="reply"))

        async def all_sent() -> bool | None:
            pending = await container.repos.messages.due(clock(), limit=50)
            return True if not pending else None

        await eventually(all_sent, "every message to be sent", timeout=60)
        for dispatcher in dispatchers:
            dispatcher.stop()
        await asyncio.gather(*loops)
    finally:
        await other_db.close()
    sent = [m.id for s in senders for m in s.sent]
    assert sorted(sent) == sorted(m.id for m in written)  # each once, none twice
    assert all(s.sent for s in senders)  # both processes did some of the work


async def test_a_message_for_an_erased_customer_is_not_sent(
    container: Container, sender: RecordingSender
) -> None:
    someone = await customer(container)
    message = await container.delivery.enqueue(someone, "hi", kind="reply")
    await container.repos.customers.delete(someone)
    await container.delivery.drain()
    stored = await stored_message(container, message.id)
    assert stored.delivery.state is DeliveryState.UNDELIVERABLE
    assert sender.sent == []


async def test_an_unreachable_channel_is_retried_until_the_message_is_too_old(
    container: Container, clock: FixedClock, sender: RecordingSender
) -> None:
    container.delivery.max_attempts = 3
    sender.results = [RetryLater("network down", transient=True)] * 20
    message = await container.delivery.enqueue(await customer(container), "hi", kind="reply")
    for _ in range(8):  # more attempts than max_attempts: an outage is not the message's fault
        await container.delivery.drain()
        clock.advance(minutes=5)
    stored = await stored_message(container, message.id)
    assert stored.delivery.state is DeliveryState.PENDING
    assert stored.delivery.attempts == 8
    clock.advance(hours=72)
    await container.delivery.drain()
    stored = await stored_message(container, message.id)
    assert stored.delivery.state is DeliveryState.UNDELIVERABLE


async def test_c3_2_2_a_customer_gets_messages_in_the_order_they_were_written(
    container: Container, clock: FixedClock, sender: RecordingSender
) -> None:
    who = await customer(container)
    sender.results = [RetryLater("429", after_seconds=30, throttled=True)]
    first = await container.delivery.enqueue(who, "first", kind="reply")
    await container.delivery.enqueue(who, "second", kind="reply")
    await container.delivery.drain()  # the first waits; the second must wait behind it
    assert sender.texts() == []
    clock.advance(seconds=31)
    await container.delivery.drain()
    assert sender.texts() == ["first", "second"]
    stored = await stored_message(container, first.id)
    assert stored.delivery.state is DeliveryState.SENT


async def test_messages_waiting_behind_a_retried_one_do_not_starve_it(
    container: Container, clock: FixedClock, sender: RecordingSender
) -> None:
    # Found by bench/faults/telegram_429.py: ten chats whose first message met a 429, with
    # replies queued behind them, filled every batch of due candidates with messages that
    # must wait for those first ones; the first ones were never reached, nothing was sent.
    customers = [await customer(container, str(100 + n)) for n in range(10)]
    sender.results = [RetryLater("429", after_seconds=5, throttled=True) for _ in customers]
    for c in customers:
        await container.delivery.enqueue(c, "first", kind="reply")
    assert await container.delivery.drain() == len(customers)
    clock.advance(seconds=1)
    for n in range(3):
        for c in customers:
            await container.delivery.enqueue(c, f"reply {n}", kind="reply")
    for _ in range(20):
        clock.advance(seconds=1)
        await container.delivery.drain()
    assert len(sender.sent) == 4 * len(customers)
    for c in customers:
        texts = [m.text for m in sender.sent if m.customer_id == c.id]
        assert texts == ["first", "reply 0", "reply 1", "reply 2"]


async def test_the_outbox_holds_only_what_waits(
    container: Container, sender: RecordingSender
) -> None:
    someone = await customer(container)
    outbox = container.repos.outbox.collection
    sent = await container.delivery.enqueue(someone, "one", kind="reply")
    sender.results = [Sent(), Undeliverable("blocked")]
    failed = await container.delivery.enqueue(someone, "two", kind="reply")
    assert {d["_id"] async for d in outbox.find({})} == {sent.id, failed.id}
    assert await container.delivery.drain() == 2
    assert await outbox.count_documents({}) == 0  # settled either way: nothing left to do
    # Enqueued again under the same key: stored once, and not queued again.
    again = await container.delivery.enqueue(
        someone, "one", kind="reply", idempotency_key=sent.idempotency_key
    )
    assert again.id == sent.id
    assert await outbox.count_documents({}) == 0
    assert [m.id for m in sender.sent] == [sent.id]


async def test_a_message_whose_outbox_entry_was_never_written_is_still_sent(
    container: Container, sender: RecordingSender
) -> None:
    someone = await customer(container)
    message = await container.delivery.enqueue(someone, "hello", kind="reply")
    # The process died between storing the message and its outbox entry.
    await container.repos.outbox.remove(message.id)
    assert await container.delivery.drain() == 0  # the dispatcher cannot see it...
    assert await container.repos.messages.restore_outbox() == 1  # ...until it is put back,
    assert await container.repos.messages.restore_outbox() == 0  # once,
    assert await container.delivery.drain() == 1
    assert [m.id for m in sender.sent] == [message.id]
    # and the dispatcher loop does that when it starts.
    lost = await container.delivery.enqueue(someone, "again", kind="reply")
    await container.repos.outbox.remove(lost.id)
    loop = asyncio.create_task(container.delivery.run())
    try:
        await eventually(lambda: _sent(sender, lost.id), "the restored message to be sent")
    finally:
        container.delivery.stop()
        await loop


async def _sent(sender: RecordingSender, message_id: str) -> bool | None:
    return True if any(m.id == message_id for m in sender.sent) else None


async def test_an_entry_whose_message_was_deleted_does_not_block_the_queue(
    container: Container, sender: RecordingSender
) -> None:
    someone = await customer(container)
    first = await container.delivery.enqueue(someone, "first", kind="reply", ticket_id="t1")
    second = await container.delivery.enqueue(someone, "second", kind="reply")
    await container.repos.messages.delete_for_ticket("t1")  # retention took its ticket
    assert await container.delivery.drain() == 1
    assert [m.id for m in sender.sent] == [second.id]
    assert await container.repos.outbox.collection.count_documents({}) == 0
    assert first.id not in {m.id for m in sender.sent}


def blip_once(monkeypatch: pytest.MonkeyPatch, collection: Any, method: str) -> list[Exception]:
    """The next `method` call on `collection` fails as a database restarting would; the
    list holds the failure until it is raised."""
    real = getattr(type(collection), method)
    failures: list[Exception] = [AutoReconnect("connection reset (the database restarting)")]

    async def blip(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self is collection and failures:
            raise failures.pop()
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(type(collection), method, blip)
    return failures


class HangingSender:
    """A channel call that takes as long as the test says (a slow Bot API: aiogram waits
    60 s for an answer)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.sent: list[Message] = []

    async def send(self, message: Message, customer: Customer) -> SendResult:
        self.started.set()
        await self.release.wait()
        self.sent.append(message)
        return Sent()


async def test_a_send_longer_than_the_lease_keeps_it_and_is_sent_once(
    container: Container, clock: FixedClock
) -> None:
    message = await container.delivery.enqueue(await customer(container), "hello", kind="reply")
    slow, fast = HangingSender(), RecordingSender()
    a = DeliveryService(container.repos, Metrics(), clock, lease_seconds=0.3)  # renewed / 0.1 s
    b = DeliveryService(container.repos, Metrics(), clock, lease_seconds=0.3)
    a.register(Channel.TELEGRAM, slow)
    b.register(Channel.TELEGRAM, fast)
    in_a = asyncio.create_task(a.dispatch_once())
    await asyncio.wait_for(slow.started.wait(), 10)
    for _ in range(4):  # the call outlasts its first lease twice over
        clock.advance(seconds=0.2)
        await asyncio.sleep(0.3)  # a renewal or more meanwhile
    assert await b.dispatch_once() is False  # still held: not taken over
    slow.release.set()
    assert await asyncio.wait_for(in_a, 10) is True
    assert await b.dispatch_once() is False
    assert [m.id for m in slow.sent] == [message.id]
    assert fast.sent == []
    stored = await stored_message(container, message.id)
    assert stored.delivery.state is DeliveryState.SENT


async def test_a_sent_message_whose_mark_failed_once_is_not_sent_again(
    container: Container, sender: RecordingSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = await container.delivery.enqueue(await customer(container), "hello", kind="reply")
    blip_once(monkeypatch, container.repos.messages.collection, "update_one")
    assert await container.delivery.drain() == 1  # sent; the mark was written on a retry
    assert await container.delivery.drain() == 0
    assert [m.id for m in sender.sent] == [message.id]
    stored = await stored_message(container, message.id)
    assert stored.delivery.state is DeliveryState.SENT


async def test_a_long_queue_behind_a_held_head_does_not_hold_up_other_customers(
    container: Container, clock: FixedClock, sender: RecordingSender
) -> None:
    busy = await customer(container, "1")
    other = await customer(container, "2")
    head = await container.delivery.enqueue(busy, "m0", kind="reply")
    for n in range(1, 21):  # more than a batch of due messages
        await container.delivery.enqueue(busy, f"m{n}", kind="reply")
    clock.advance(seconds=1)
    await container.delivery.enqueue(other, "for another chat", kind="reply")
    # A dispatcher of a process that was killed while sending the head: its lease.
    held = await container.repos.locks.acquire(
        f"delivery:{head.id}", timedelta(seconds=30), now=clock(), owner="dead"
    )
    assert held is not None
    for _ in range(3):
        clock.advance(seconds=2)
        await container.delivery.drain()
    assert sender.texts() == ["for another chat"]  # not waiting for the dead lease
    clock.advance(seconds=30)
    await container.delivery.drain()
    assert sender.texts() == ["for another chat", *(f"m{n}" for n in range(21))]


async def test_an_outbox_entry_lost_to_a_blip_is_written_again_and_order_holds(
    container: Container, sender: RecordingSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    who = await customer(container)
    failures = blip_once(monkeypatch, container.repos.outbox.collection, "insert_one")
    # The message is stored, its entry's first insert fails: written on a retry, so the
    # customer's later messages cannot overtake it.
    await container.delivery.enqueue(who, "status: in progress", kind="status")
    assert failures == []
    await container.delivery.enqueue(who, "reply: fixed, closing", kind="reply")
    await container.delivery.drain()
    assert sender.texts() == ["status: in progress", "reply: fixed, closing"]


async def test_a_widget_push_redis_did_not_take_is_tried_again_not_counted_sent(
    container: Container, settings: Settings, tmp_path: Path
) -> None:
    """With several processes, widget pushes go through Redis; python-socketio only logs
    a publish that failed. Delivery must not count such a push as sent."""
    with redis_server(tmp_path) as url:
        sio = socketio.AsyncServer(
            async_mode="aiohttp",
            client_manager=socketio_manager(configured(settings, redis_url=url)),
        )
        container.delivery.register(Channel.WIDGET, WidgetSender(sio))
        web = await container.repos.customers.get_or_create(Channel.WIDGET, "visitor:r", "en")
        pushed = await container.delivery.enqueue(web, "while Redis is up", kind="reply")
        assert await container.delivery.drain() == 1
        stored = await stored_message(container, pushed.id)
        assert stored.delivery.state is DeliveryState.SENT
    # Redis is gone now.
    lost = await container.delivery.enqueue(web, "while Redis is down", kind="reply")
    assert await container.delivery.drain() == 1
    stored = await stored_message(container, lost.id)
    assert stored.delivery.state is DeliveryState.PENDING  # tried again later
    assert stored.delivery.last_error == "widget: redis did not take the push"
