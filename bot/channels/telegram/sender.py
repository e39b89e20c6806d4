"""Telegram delivery: Telegram's rate limits, retry_after, and permanent failures."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)

from bot.channels.telegram.keyboards import chunks
from bot.domain.models import Customer, Message
from bot.services.delivery import RetryLater, SendResult, Sent, Undeliverable

GONE = ("chat not found", "user is deactivated", "bot was kicked", "have no rights to send")


class RateLimiter:
    """About 30 messages a second overall, 1 a second per chat, 20 a minute per group.

    Each send reserves its time slot under a lock and waits for it outside the lock,
    so a chat that must wait (or a busy group) never holds up sends to other chats.
    Per process: with several processes, lower the numbers or give Telegram delivery
    to fewer of them (429s are still honoured either way).
    """

    def __init__(
        self, per_second: int = 30, per_chat_seconds: float = 1.0, per_group_minute: int = 20
    ) -> None:
        self.interval = 1.0 / per_second
        self.per_chat_seconds = per_chat_seconds
        self.per_group_minute = per_group_minute
        self._next_any = 0.0
        self._next_in_chat: dict[int, float] = {}
        self._group_slots: dict[int, deque[float]] = {}
        self._lock = asyncio.Lock()

    def _reserve(self, chat_id: int, now: float) -> float:
        slot = max(now, self._next_any)
        self._next_any = slot + self.interval
        slot = max(slot, self._next_in_chat.get(chat_id, 0.0))
        if chat_id < 0:  # groups and supergroups: slots are in order within one group
            slots = self._group_slots.setdefault(chat_id, deque())
            while slots and slots[0] <= now - 60.0:
                slots.popleft()
            if len(slots) >= self.per_group_minute:
                slot = max(slot, slots[-self.per_group_minute] + 60.0)
            slots.append(slot)
        self._next_in_chat[chat_id] = slot + self.per_chat_seconds
        if len(self._next_in_chat) > 10_000:  # forget chats that are free again
            self._next_in_chat = {c: t for c, t in self._next_in_chat.items() if t > now}
        return slot

    def pause(self, chat_id: int, seconds: float) -> None:
        """Send nothing to the chat for `seconds` (Telegram answered 429 with them)."""
        until = time.monotonic() + seconds
        self._next_in_chat[chat_id] = max(self._next_in_chat.get(chat_id, 0.0), until)

    def busy_for(self, chat_id: int) -> float:
        """Seconds until this chat may be sent to again (0: now); reserves nothing."""
        return max(0.0, self._next_in_chat.get(chat_id, 0.0) - time.monotonic())

    async def wait(self, chat_id: int) -> None:
        async with self._lock:
            slot = self._reserve(chat_id, time.monotonic())
        delay = slot - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


# A chat that is not free for longer than this is left for later rather than waited for:
# the outbox has one dispatcher per process, and a wait inside a send would hold up every
# other customer's message behind it (a widget reply waiting on a Telegram chat's pacing).
LONGEST_WAIT_IN_SEND = 0.05


class TelegramSender:
    def __init__(self, bot: Bot, limiter: RateLimiter) -> None:
        self.bot = bot
        self.limiter = limiter

    async def send(self, message: Message, customer: Customer) -> SendResult:
        chat_id = int(customer.external_id)
        busy = self.limiter.busy_for(chat_id)
        if busy > LONGEST_WAIT_IN_SEND:
            return RetryLater("telegram: chat paced", after_seconds=busy, throttled=True)
        # A long text goes in parts; a retry after a failure between them sends the rest.
        sent = message.delivery.parts_sent
        try:
            for part in chunks(message.text)[sent:]:
                await self.limiter.wait(chat_id)
                await self.bot.send_message(chat_id, part)
                sent += 1
        except TelegramRetryAfter as exc:
            after = float(exc.retry_after)
            return RetryLater("telegram 429", after_seconds=after, throttled=True, parts_sent=sent)
        except TelegramForbiddenError:
            return Undeliverable("telegram 403: the customer blocked the bot or left")
        except (TelegramBadRequest, TelegramNotFound) as exc:
            if any(reason in exc.message.lower() for reason in GONE):
                return Undeliverable(f"telegram: {exc.message}")
            return RetryLater(f"telegram 400: {exc.message}", parts_sent=sent)
        except (TelegramNetworkError, TelegramServerError, TelegramUnauthorizedError) as exc:
            # Telegram (or our token) is the problem, not the message: keep it for later.
            error = f"telegram unreachable: {type(exc).__name__}"
            return RetryLater(error, transient=True, parts_sent=sent)
        return Sent()
