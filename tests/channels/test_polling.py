"""Long polling confirms an update to Telegram only once it has been handled
(bot.channels.telegram.polling), against the fake Bot API and a real aiogram Bot."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message
from pymongo.errors import AutoReconnect

from bot.channels.telegram import TelegramChannel
from bot.channels.telegram.polling import ConfirmingPoller
from bot.storage import DatabaseUnavailable
from tests.fake_telegram import FakeTelegram


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(long_poll_cap=0.2) as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    bot = Bot(fake.token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url)))
    yield bot
    await bot.session.close()


class Polling:
    """A dispatcher whose one handler runs `behaviour(text)`, polled by ConfirmingPoller."""

    def __init__(self, bot: Bot, behaviour: Callable[[str], Awaitable[None]]) -> None:
        self.dispatcher = Dispatcher()
        self.calls: Counter[str] = Counter()
        self.done: list[str] = []

        @self.dispatcher.message()
        async def handle(message: Message) -> None:
            text = message.text or ""
            self.calls[text] += 1
            await behaviour(text)
            self.done.append(text)

        self.poller = ConfirmingPoller(
            self.dispatcher, bot, concurrency=4, timeout=1, allowed_updates=None
        )
        self.poller.IDLE_WAIT = 0.05
        self.poller.RETRY_PAUSE = 0.1
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Polling:
        self.task = asyncio.create_task(self.poller.run())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def until(check: Callable[[], Any], what: str, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def pending(fake: FakeTelegram) -> list[int]:
    """Update ids Telegram still holds: not confirmed by any getUpdates offset."""
    return [u["update_id"] for u in fake.pending_updates]


async def test_an_update_in_hand_is_not_confirmed_until_it_is_handled(
    fake: FakeTelegram, bot: Bot
) -> None:
    # aiogram's start_polling confirmed it with its next getUpdates, while still handling
    # it: a process killed then lost it.
    release = asyncio.Event()

    async def behaviour(text: str) -> None:
        if text == "slow":
            await release.wait()

    async with Polling(bot, behaviour) as polling:
        slow = fake.user_text(1, "slow")["update_id"]
        await until(lambda: polling.calls["slow"] == 1, "the slow update to start")
        fast = fake.user_text(2, "fast")["update_id"]
        await until(lambda: "fast" in polling.done, "the later update to be handled")
        asked = len(fake.calls_of("getUpdates"))
        await until(lambda: len(fake.calls_of("getUpdates")) >= asked + 3, "more polls")
        assert pending(fake) == [slow, fast]  # both come back until the slow one is done

        release.set()
        await until(lambda: pending(fake) == [], "both to be confirmed")
    assert polling.calls == {"slow": 1, "fast": 1}  # returned again, handled once


async def test_an_update_that_failed_for_a_passing_reason_is_handled_again(
    fake: FakeTelegram, bot: Bot
) -> None:
    # The database down longer than the middleware's retries: aiogram moved past it.
    async def behaviour(text: str) -> None:
        if text == "hello" and polling.calls[text] == 1:
            raise DatabaseUnavailable(AutoReconnect("connection refused"))

    async with Polling(bot, behaviour) as polling:
        fake.user_text(1, "hello")
        await until(lambda: polling.done == ["hello"], "the second try to succeed")
        await until(lambda: pending(fake) == [], "the update to be confirmed")
    assert polling.calls == {"hello": 2}


async def test_a_users_updates_stay_in_order_when_one_fails_and_is_handled_again(
    fake: FakeTelegram, bot: Bot
) -> None:
    async def behaviour(text: str) -> None:
        if text == "first" and polling.calls[text] == 1:
            raise DatabaseUnavailable(AutoReconnect("connection refused"))

    async with Polling(bot, behaviour) as polling:
        fake.user_text(1, "first")
        fake.user_text(1, "second")
        fake.user_text(2, "other")
        await until(lambda: len(polling.done) == 3, "all three")
        await until(lambda: pending(fake) == [], "all three to be confirmed")
    mine = [text for text in polling.done if text != "other"]
    assert mine == ["first", "second"]
    assert polling.calls == {"first": 2, "second": 1, "other": 1}


async def test_one_users_burst_does_not_take_every_slot(fake: FakeTelegram, bot: Bot) -> None:
    # An album is one update per photo. Theirs go one at a time; others' go on meanwhile.
    release = asyncio.Event()

    async def behaviour(text: str) -> None:
        if text.startswith("photo"):
            await release.wait()

    async with Polling(bot, behaviour) as polling:
        for n in range(10):
            fake.user_text(1, f"photo {n}")
        fake.user_text(2, "hello")
        await until(lambda: "hello" in polling.done, "the other user's update")
        assert sum(polling.calls[f"photo {n}"] for n in range(10)) == 1
        release.set()
        await until(lambda: len(polling.done) == 11, "the album")
    assert polling.done[1:] == [f"photo {n}" for n in range(10)]


async def test_an_update_that_keeps_failing_is_given_up_after_some_rounds(
    fake: FakeTelegram, bot: Bot
) -> None:
    async def behaviour(text: str) -> None:
        if text == "poison":
            raise DatabaseUnavailable(AutoReconnect("a query that always times out"))

    async with Polling(bot, behaviour) as polling:
        polling.poller.GIVE_UP_AFTER = 3
        fake.user_text(1, "poison")
        fake.user_text(1, "after")
        await until(lambda: polling.done == ["after"], "the next update")
        await until(lambda: pending(fake) == [], "both to be confirmed")
    assert polling.calls == {"poison": 3, "after": 1}


async def test_an_update_that_fails_for_any_other_reason_is_confirmed_and_polling_goes_on(
    fake: FakeTelegram, bot: Bot
) -> None:
    async def behaviour(text: str) -> None:
        if text == "broken":
            raise ValueError("a bug")

    async with Polling(bot, behaviour) as polling:
        fake.user_text(1, "broken")
        fake.user_text(1, "after")
        await until(lambda: polling.done == ["after"], "the next update")
        await until(lambda: pending(fake) == [], "both to be confirmed")
    assert polling.calls == {"broken": 1, "after": 1}


async def test_on_stop_updates_in_hand_may_finish_and_the_rest_stay_with_telegram(
    fake: FakeTelegram, bot: Bot
) -> None:
    cancelled: list[str] = []

    async def behaviour(text: str) -> None:
        try:
            await asyncio.sleep(0.2 if text == "quick" else 3600)
        except asyncio.CancelledError:
            cancelled.append(text)
            raise

    async with Polling(bot, behaviour) as polling:
        polling.poller.DRAIN_SECONDS = 1.0
        stuck = fake.user_text(1, "stuck")["update_id"]
        fake.user_text(2, "quick")
        await until(lambda: polling.calls["quick"] == 1, "both to start")
    assert polling.task is not None
    assert polling.task.done()
    assert polling.done == ["quick"]  # finished within the drain
    assert cancelled == ["stuck"]  # then cancelled, not left running
    assert stuck in pending(fake)  # the next poller gets it


async def test_a_stop_while_polling_is_being_stopped_is_not_swallowed() -> None:
    # The lease was lost and polling is finishing its updates in hand when the service is
    # stopped: the stop must go through (it was swallowed, and the lease loop went on).
    draining = asyncio.Event()

    async def polling() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            draining.set()
            await asyncio.sleep(3600)  # finishing what is in hand

    task = asyncio.create_task(polling())
    await asyncio.sleep(0)
    stopping = asyncio.create_task(TelegramChannel._stop_polling(task))
    await draining.wait()
    stopping.cancel()  # the service stops meanwhile
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert task.cancelled()
