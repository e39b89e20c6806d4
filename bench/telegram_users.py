"""Benchmark Telegram users: people going through the feedback dialogue against the
fake Bot API (tests/fake_telegram.py), each update sent once the bot has answered the one
before. Shared by bench/telegram_inbound.py and bench/faults/telegram_kill9.py."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.fake_telegram import Call, FakeTelegram

BUTTONS_BEFORE_TEXT = ("yes", "yes", "yes", "logistics", "2")
BUTTONS_AFTER_TEXT = ("done", "skip", "submit")


class Chats:
    """What the fake Bot API sent each benchmark chat, followed as it is answered
    (FakeTelegram.answered) rather than searched for: with hundreds of users, searching
    the fake's list of calls over and over took more CPU than the service under test."""

    def __init__(self, fake: FakeTelegram) -> None:
        self.prompts: dict[int, Call] = {}  # the latest message with buttons, per chat
        self.waiting: dict[int, asyncio.Future[float]] = {}
        fake.answered.append(self.answered)

    def answered(self, call: Call) -> None:
        if call.method != "sendMessage":
            return
        chat = call.chat_id
        if call.params.get("reply_markup"):
            self.prompts[chat] = call
        waiter = self.waiting.pop(chat, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(call.at)

    def expect(self, chat: int) -> asyncio.Future[float]:
        """The time of the next message to `chat`, once it is sent."""
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[chat] = waiter
        return waiter

    def first_button(self, chat: int, values: tuple[str, ...]) -> tuple[str, int] | None:
        """The first of `values` that the latest prompt in the chat offers, if any."""
        for value in values:
            try:
                return self.button(chat, value)
            except LookupError:
                continue
        return None

    def button(self, chat: int, value: str) -> tuple[str, int]:
        """The callback data of the button `value` on the latest prompt in the chat."""
        prompt = self.prompts[chat]
        for row in prompt.params["reply_markup"]["inline_keyboard"]:
            for b in row:
                kind, _, rest = b["callback_data"].partition(":")
                if (rest.partition(":")[2] if kind == "o" else rest) == value:
                    return b["callback_data"], prompt.result["message_id"]
        raise LookupError(f"no button {value!r} in chat {chat}")


class User:
    def __init__(
        self,
        fake: FakeTelegram,
        chats: Chats,
        chat: int,
        deliver: Any,
        latencies: list[float],
        *,
        push: bool,
        answer_timeout: float = 60.0,
    ) -> None:
        self.answer_timeout = answer_timeout  # seconds an update may wait for its answer
        self.push = push  # polling: updates are queued for getUpdates as they are built
        self.fake = fake
        self.chats = chats
        self.chat = chat
        self.deliver = deliver
        self.latencies = latencies

    async def send(self, update: dict[str, Any]) -> None:
        answer = self.chats.expect(self.chat)
        t0 = time.monotonic()
        await self.deliver(update)
        try:
            at = await asyncio.wait_for(answer, self.answer_timeout)
        except TimeoutError:
            raise TimeoutError(
                f"chat {self.chat}: no answer in {self.answer_timeout:.0f} s"
            ) from None
        self.latencies.append((at - t0) * 1000)


async def queued(update: dict[str, Any]) -> None:
    """Polling: building the update queued it for getUpdates; nothing more to do."""


async def run_user(user: User) -> None:
    """One person through the dialogue: each update once the previous one is answered."""
    fake = user.fake

    def build(update_builder: Any, *a: Any, **kw: Any) -> dict[str, Any]:
        return update_builder(*a, push=user.push, **kw)  # type: ignore[no-any-return]

    chat = user.chat
    await user.send(build(fake.user_command, chat, "start"))
    for value in BUTTONS_BEFORE_TEXT:
        data, message_id = user.chats.button(chat, value)
        await user.send(build(fake.user_callback, chat, data, message_id=message_id))
    await user.send(build(fake.user_text, chat, "The parcel came two days late."))
    for value in BUTTONS_AFTER_TEXT:
        data, message_id = user.chats.button(chat, value)
        await user.send(build(fake.user_callback, chat, data, message_id=message_id))


# Whatever the bot asks, the first of these on its latest question is pressed.
PRESS_FIRST_OF = ("yes", "logistics", "2", "done", "skip", "submit")


async def run_user_following(user: User, most: int = 30) -> int:
    """One person through the dialogue who answers whatever the bot asked last, so a
    question asked again (an update handled again after a crash answers again) does not
    lead them astray. Ends once they pressed "submit"; returns the updates they sent."""
    fake, chat = user.fake, user.chat
    await user.send(fake.user_command(chat, "start", push=user.push))
    for sent in range(2, most + 1):
        button = user.chats.first_button(chat, PRESS_FIRST_OF)
        if button is None:  # the question that wants their own words
            await user.send(fake.user_text(chat, "The parcel came two days late.", push=user.push))
            continue
        data, message_id = button
        await user.send(fake.user_callback(chat, data, message_id=message_id, push=user.push))
        if data.endswith(":submit"):
            return sent
    raise RuntimeError(f"chat {chat}: not through the dialogue in {most} updates")
