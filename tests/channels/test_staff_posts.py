"""The staff group's topics as the posting worker keeps them (bot.channels.telegram.staff):
each process's StaffTopics on one database, the fake Bot API, faults injected.

From a review of the first form of the worker: each test here failed on it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import web

from bot.app import Container
from bot.channels.telegram import staff as staff_module
from bot.channels.telegram.sender import RateLimiter
from bot.channels.telegram.staff import StaffTopics
from bot.domain.models import Attachment, Channel, Customer, Ticket
from bot.storage.database import DatabaseUnavailable
from tests.fake_telegram import Call, FakeTelegram, _ApiError
from tests.support import FixedClock

STAFF_GROUP = -1001234567890


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


class Group:
    """The staff group, and the processes that post to it."""

    def __init__(self, container: Container, fake: FakeTelegram) -> None:
        self.container = container
        self.fake = fake
        self.bots: list[Bot] = []

    def process(self, owner: str = "process-a", *, listen: bool = True) -> StaffTopics:
        """One process's StaffTopics (its own Bot and pacing), on the shared database."""
        api = TelegramAPIServer.from_base(self.fake.base_url)
        bot = Bot(self.fake.token, session=AiohttpSession(api=api))
        self.bots.append(bot)
        limiter = RateLimiter(per_second=1000, per_chat_seconds=0.0, per_group_minute=100_000)
        tickets, i18n = self.container.tickets, self.container.i18n
        topics = StaffTopics(bot, STAFF_GROUP, tickets, i18n, limiter, "//", owner=owner)
        if listen:
            self.container.tickets.listeners.append(topics)
        return topics

    async def customer(self, user_id: int = 5001) -> Customer:
        repos = self.container.repos
        return await repos.customers.get_or_create(Channel.TELEGRAM, str(user_id), "en")

    async def file(
        self, customer: Customer, text: str, flow_id: str, photos: tuple[str, ...] = ()
    ) -> Ticket:
        answers = {
            "category": "logistics",
            "rating": 2,
            "text": text,
            "attachments": [{"kind": "photo", "file_ref": ref} for ref in photos],
        }
        return await self.container.tickets.file(
            customer, Channel.TELEGRAM, answers, flow_id=flow_id
        )

    async def says(self, customer: Customer, ticket: Ticket, text: str, **kw: Any) -> None:
        await self.container.tickets.add_customer_message(customer, ticket, text, **kw)

    def posts(self, needle: str = "") -> list[Call]:
        return [
            c
            for c in self.fake.calls
            if c.method in ("sendMessage", "sendPhoto", "sendDocument")
            and not c.failed
            and c.chat_id == STAFF_GROUP
            and needle in str(c.params.get("text", c.params.get("photo", "")))
        ]

    def topics_made(self) -> list[Call]:
        return [c for c in self.fake.calls_of("createForumTopic") if not c.failed]

    async def erasure_paused_after_reading_the_ticket(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> tuple[asyncio.Task[Any], asyncio.Event]:
        """A customer's ticket (with their name), and their erasure, paused once it has
        read the ticket (no topic yet); it goes on when the event is set."""
        customer = await self.customer()
        await self.file(customer, "My name is Ann Lee, order 5531.", "f1")
        messages = self.container.repos.messages
        real_delete = messages.delete_for_ticket
        reached, go = asyncio.Event(), asyncio.Event()

        async def delete_for_ticket(ticket_id: str) -> int:
            reached.set()
            await go.wait()
            return await real_delete(ticket_id)

        monkeypatch.setattr(messages, "delete_for_ticket", delete_for_ticket)
        erasing = asyncio.create_task(self.container.privacy.erase(customer))
        await reached.wait()
        return erasing, go

    @staticmethod
    async def round_and_retry(topics: StaffTopics, clock: FixedClock) -> None:
        """A round, and the next one once a first retry is due."""
        await topics.post_due()
        clock.advance(seconds=5)
        await topics.post_due()

    async def owed(self) -> int:
        far = self.container.tickets.clock().replace(year=2100)
        return len(await self.container.repos.staff_posts.due(far, 1000))


@pytest.fixture
async def group(container: Container, fake: FakeTelegram) -> AsyncIterator[Group]:
    staff = Group(container, fake)
    yield staff
    for bot in staff.bots:
        await bot.session.close()


async def called(fake: FakeTelegram, method: str) -> None:
    for _ in range(500):
        if fake.calls_of(method):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {method}")


async def test_a_post_another_process_finished_meanwhile_is_not_posted_again(
    group: Group,
) -> None:
    a, b = group.process("process-a"), group.process("process-b", listen=False)
    await group.file(await group.customer(), "First ticket's words.", "f1")
    await group.file(await group.customer(5002), "Second ticket's words.", "f2")
    release = group.fake.hold("createForumTopic", chat_id=STAFF_GROUP)  # B's first call hangs
    b_round = asyncio.create_task(b.post_due())
    await called(group.fake, "createForumTopic")
    await a.post_due()  # the second ticket: posted, and its lock released
    release.set()
    await b_round  # B's list still has it
    assert len(group.posts("Second ticket's words.")) == 1


async def test_a_retry_sends_only_the_parts_a_first_try_did_not(
    group: Group, clock: FixedClock
) -> None:
    topics = group.process()
    customer = await group.customer()
    ticket = await group.file(customer, "The box was crushed.", "f1", photos=("photo-1",))
    group.fake.fail_next("sendPhoto", error_code=502, chat_id=STAFF_GROUP)
    await group.round_and_retry(topics, clock)
    group.fake.fail_next("sendPhoto", error_code=429, retry_after=1, chat_id=STAFF_GROUP)
    photo = Attachment(kind="photo", file_ref="photo-2")
    await group.says(customer, ticket, "Here is the label.", attachments=[photo])
    await topics.post_due()
    clock.advance(seconds=5)
    await asyncio.sleep(1.1)  # the group's pause after the 429 (real time)
    await topics.post_due()
    assert await group.owed() == 0
    assert len(group.posts("photo-1")) == len(group.posts("photo-2")) == 1
    assert len(group.posts("The box was crushed.")) == 1
    assert len(group.posts("Here is the label.")) == 1


async def test_a_topic_made_whose_recording_failed_is_not_made_again(
    group: Group, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    topics = group.process()
    await group.file(await group.customer(), "The parcel is late.", "f1")
    tickets = group.container.repos.tickets
    real_set_topic = tickets.set_topic
    failures = [DatabaseUnavailable(ConnectionError())]

    async def set_topic(*args: Any) -> bool:
        if failures:
            raise failures.pop()
        return await real_set_topic(*args)

    monkeypatch.setattr(tickets, "set_topic", set_topic)
    await group.round_and_retry(topics, clock)
    assert await group.owed() == 0
    assert len(group.fake.topics[STAFF_GROUP]) == 1
    assert len(group.posts("The parcel is late.")) == 1


async def test_a_topic_deleted_by_hand_does_not_hold_up_other_tickets(
    group: Group, clock: FixedClock
) -> None:
    topics = group.process()
    customer = await group.customer()
    first = await group.file(customer, "First ticket.", "f1")
    await topics.post_due()
    stored = await group.container.repos.tickets.get(first.id)
    assert stored is not None
    gone = stored.telegram_topic_id

    def send_message(call: Call) -> Any:  # staff deleted the first topic by hand
        if call.params.get("message_thread_id") == gone:
            raise _ApiError(400, "Bad Request: message thread not found")
        return group.fake._send_message(call)

    group.fake.stub("sendMessage", send_message)
    for n in range(60):
        clock.advance(seconds=1)
        await group.says(customer, first, f"message {n}")
    clock.advance(seconds=1)
    await group.file(await group.customer(5002), "A new ticket, unrelated.", "f2")
    for _ in range(3):  # as run() does: again at once while a full batch went
        if not await topics.post_due():
            break
    assert len(group.topics_made()) == 2
    assert len(group.posts("A new ticket, unrelated.")) == 1


async def test_a_post_dated_before_its_tickets_topic_waits_for_the_topic(
    group: Group, clock: FixedClock
) -> None:
    topics = group.process()
    customer = await group.customer()
    ticket = await group.file(customer, "The parcel is late.", "f1")
    clock.advance(seconds=-1)  # another process, its clock a second behind
    await group.says(customer, ticket, "It was due on Monday.")
    clock.advance(seconds=1)
    await topics.post_due()
    assert len(group.topics_made()) == 1
    posted = [c.params["text"] for c in group.posts()]
    assert "The parcel is late." in posted[0]  # the card first, then the words
    assert "It was due on Monday." in posted[1]


async def test_an_erasure_while_the_topic_is_made_leaves_nothing_in_the_group(
    group: Group, clock: FixedClock
) -> None:
    topics = group.process()
    group.container.privacy.topic_eraser = topics.delete_topic
    customer = await group.customer()
    ticket = await group.file(customer, "My name is Ann Lee, order 5531.", "f1", ("photo-1",))
    release = group.fake.hold("createForumTopic", chat_id=STAFF_GROUP)
    posting = asyncio.create_task(topics.post_due())
    await called(group.fake, "createForumTopic")
    await group.container.privacy.erase(customer)  # finds no topic to delete yet
    release.set()
    await posting
    clock.advance(seconds=10)
    await topics.post_due()
    assert await group.owed() == 0
    assert group.posts("Ann Lee") == []
    assert group.fake.topics[STAFF_GROUP] == {}
    stored = await group.container.repos.tickets.get(ticket.id)
    assert stored is not None
    assert stored.telegram_topic_id is None


async def test_a_bot_api_away_for_a_quarter_of_an_hour_loses_no_topic(
    group: Group, clock: FixedClock
) -> None:
    topics = group.process()
    customer = await group.customer()
    ticket = await group.file(customer, "The parcel is late.", "f1")
    group.fake.fail_next("createForumTopic", error_code=502, times=10, chat_id=STAFF_GROUP)
    for _ in range(10):
        await topics.post_due()
        clock.advance(seconds=301)
    await group.says(customer, ticket, "Any news?")  # Telegram is back
    await topics.post_due()
    assert await group.owed() == 0
    assert len(group.topics_made()) == 1
    assert len(group.posts("Any news?")) == 1


async def test_a_429_pauses_the_whole_group(group: Group) -> None:
    topics = group.process()
    for n in range(3):
        await group.file(await group.customer(5000 + n), f"Ticket {n}.", f"f{n}")
    group.fake.fail_next("createForumTopic", error_code=429, retry_after=30, chat_id=STAFF_GROUP)
    await topics.post_due()
    assert len(group.fake.calls_of("createForumTopic")) == 1  # nothing more for 30 s


async def test_an_answer_that_is_not_json_holds_up_only_its_own_ticket(
    group: Group, clock: FixedClock
) -> None:
    topics = group.process()
    await group.file(await group.customer(5001), "<script>x</script> broke the page", "f1")
    clock.advance(seconds=1)
    await group.file(await group.customer(5002), "An ordinary ticket.", "f2")

    def send_message(call: Call) -> Any:  # a proxy in front of the Bot API refuses one
        if "<script>" in call.params.get("text", ""):
            raise web.HTTPForbidden(text="<html>Request blocked</html>", content_type="text/html")
        return group.fake._send_message(call)

    group.fake.stub("sendMessage", send_message)
    await topics.post_due()
    assert len(group.posts("An ordinary ticket.")) == 1
    assert await group.owed() == 1  # the refused one, for a later try


async def test_the_worker_stops_and_starts_again(
    group: Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(staff_module, "POLL_SECONDS", 0.05)
    topics = group.process()
    for round_ in range(2):
        topics.resume()  # as TelegramChannel.start does
        worker = asyncio.create_task(topics.run())
        await group.file(await group.customer(5001 + round_), f"Round {round_}.", f"f{round_}")
        for _ in range(200):
            if group.posts(f"Round {round_}."):
                break
            await asyncio.sleep(0.02)
        topics.stop()
        await asyncio.wait_for(worker, 5)
        assert len(group.posts(f"Round {round_}.")) == 1


async def test_a_ticket_retrying_with_a_batch_of_posts_does_not_hold_up_the_others(
    group: Group, clock: FixedClock
) -> None:
    topics = group.process()
    customer = await group.customer()
    first = await group.file(customer, "First ticket.", "f1")
    await topics.post_due()

    def send_message(call: Call) -> Any:  # one message keeps failing (a 502, a proxy)
        if "poison" in call.params.get("text", ""):
            raise _ApiError(502, "Bad Gateway")
        return group.fake._send_message(call)

    group.fake.stub("sendMessage", send_message)
    clock.advance(seconds=1)
    await group.says(customer, first, "poison")
    for n in range(staff_module.BATCH):
        clock.advance(seconds=1)
        await group.says(customer, first, f"message {n}")
    clock.advance(seconds=1)
    await group.file(await group.customer(5002), "A new ticket, unrelated.", "f2")
    for _ in range(20):  # a minute of rounds: the first ticket's head waits for its retry
        await topics.post_due()
        clock.advance(seconds=3)
    assert len(group.posts("A new ticket, unrelated.")) == 1


@pytest.mark.parametrize("lost", ["the card's record", "the new topic's id"])
async def test_what_went_but_was_not_recorded_is_not_sent_or_made_again(
    group: Group, clock: FixedClock, monkeypatch: pytest.MonkeyPatch, lost: str
) -> None:
    """The database lost the record of a part sent (or of a topic made) for a moment: a
    retry sent the card again (or made a second topic, the first left empty)."""
    topics = group.process()
    await group.file(await group.customer(), "The parcel is late.", "f1")
    posts = group.container.repos.staff_posts
    real_progress = posts.progress
    failures = [DatabaseUnavailable(ConnectionError())]

    async def progress(post_id: str, **kw: Any) -> None:
        if (kw.get("topic_id") is not None) == (lost == "the new topic's id") and failures:
            raise failures.pop()
        await real_progress(post_id, **kw)

    monkeypatch.setattr(posts, "progress", progress)
    await group.round_and_retry(topics, clock)
    assert await group.owed() == 0
    assert len(group.posts("The parcel is late.")) == 1
    assert len(group.topics_made()) == 1


async def test_an_erasure_that_read_the_ticket_before_its_topic_deletes_the_topic(
    group: Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    topics = group.process()
    group.container.privacy.topic_eraser = topics.delete_topic
    erasing, go = await group.erasure_paused_after_reading_the_ticket(monkeypatch)
    await topics.post_due()  # topic made and recorded, card sent, not anonymized yet
    go.set()
    await erasing
    await topics.post_due()
    assert group.fake.topics[STAFF_GROUP] == {}  # the card went, and its topic went too


async def test_an_erased_tickets_topic_is_deleted_however_long_it_takes(
    group: Group, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(staff_module, "POST_TRIES", 3)  # 100 in production: ~8 hours
    topics = group.process()
    group.container.privacy.topic_eraser = topics.delete_topic
    erasing, go = await group.erasure_paused_after_reading_the_ticket(monkeypatch)
    release = group.fake.hold("sendMessage", chat_id=STAFF_GROUP)  # the card, slow
    posting = asyncio.create_task(topics.post_due())
    await called(group.fake, "sendMessage")  # the topic is recorded on the ticket
    go.set()
    await erasing  # anonymized: the ticket forgets the topic; the post alone knows it
    group.fake.fail_next("deleteForumTopic", error_code=502, times=50, chat_id=STAFF_GROUP)
    release.set()
    await posting  # sees the erasure: deleting the topic fails, retried
    for _ in range(5):
        clock.advance(seconds=400)
        await topics.post_due()
    assert await group.owed() == 1  # not given up: the topic holds the customer's words
    group.fake._faults.clear()  # Telegram takes deletions again
    clock.advance(seconds=400)
    await topics.post_due()
    assert await group.owed() == 0
    assert group.fake.topics[STAFF_GROUP] == {}


async def test_a_refused_photo_does_not_drop_the_files_after_it(group: Group) -> None:
    topics = group.process()
    group.fake.fail_next(
        "sendPhoto",
        error_code=400,
        description="Bad Request: wrong file identifier/HTTP URL specified",
        chat_id=STAFF_GROUP,
    )
    await group.file(await group.customer(), "Broken.", "f1", photos=("photo-1", "photo-2"))
    await topics.post_due()
    assert len(group.posts("photo-2")) == 1


async def test_a_failure_logs_no_customer_words(
    group: Group, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    topics = group.process()
    customer = await group.customer()
    ticket = await group.file(customer, "The parcel is late.", "f1")
    await topics.post_due()

    def send_message(call: Call) -> Any:  # an answer aiogram cannot read (a newer Bot API)
        sent = group.fake._send_message(call)
        return {**sent, "date": "not a date"}

    group.fake.stub("sendMessage", send_message)
    await group.says(customer, ticket, "My name is Ann Lee, order 5531.")
    with caplog.at_level(logging.INFO, logger="bot.channels.telegram.staff"):
        await topics.post_due()
    logged = [str(vars(r)) for r in caplog.records]
    assert logged, "nothing logged"
    assert not any("Ann Lee" in line for line in logged), logged


async def test_posts_owed_at_the_same_moment_go_in_the_order_they_were_owed(
    group: Group, clock: FixedClock
) -> None:
    topics = group.process()
    customer = await group.customer()
    ticket = await group.file(customer, "The parcel is late.", "f1")
    await topics.post_due()
    for n in range(8):  # within one millisecond (the database keeps no finer time)
        await group.says(customer, ticket, f"part {n}")
    await topics.post_due()
    posted = [c.params["text"].split("part ")[1] for c in group.posts("part ")]
    assert posted == [str(n) for n in range(8)]


async def test_a_long_message_reaches_the_group_whole(group: Group) -> None:
    topics = group.process()
    customer = await group.customer()
    ticket = await group.file(customer, "The parcel is late.", "f1")
    await topics.post_due()
    long = "word " * 1000 + "THE END"  # the widget takes 20000 characters
    await group.says(customer, ticket, long)
    await topics.post_due()
    assert group.posts("THE END")


async def test_a_stop_before_the_worker_began_stops_it(group: Group) -> None:
    topics = group.process()
    worker = asyncio.create_task(topics.run())
    topics.stop()
    await asyncio.wait_for(worker, 5)
