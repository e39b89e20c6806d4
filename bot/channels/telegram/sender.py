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
)

from bot.channels.telegram.keyboards import chunks
from bot.domain.models import Customer, Message
from bot.services.delivery import RetryLater, SendResult, Sent, Undeliverable

GONE = ("chat not found", "user is deactivated", "bot was kicked", "have no rights to send")


class RateLimiter:
    """About 30 messages a second overall, 1 a second per chat, 20 a minute per group.

    Per process: with several processes, lower the numbers or give Telegram
    delivery to fewer of them (429s are still honoured either way).
    """

    def __init__(self, per_second: int = 30, per_chat_seconds: float = 1.0) -> None:
        self.per_second = per_second
        self.per_chat_seconds = per_chat_seconds
        self._recent: deque[float] = deque()
        self._chat_last: dict[int, float] = {}
        self._group_recent: dict[int, deque[float]] = {}
        self._lock = asyncio.Lock()

    async def wait(self, chat_id: int) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._recent and now - self._recent[0] >= 1.0:
                    self._recent.popleft()
                waits = [0.0]
                if len(self._recent) >= self.per_second:
                    waits.append(1.0 - (now - self._recent[0]))
                last = self._chat_last.get(chat_id)
                if last is not None:
                    waits.append(self.per_chat_seconds - (now - last))
                if chat_id < 0:  # groups and supergroups
                    group = self._group_recent.setdefault(chat_id, deque())
                    while group and now - group[0] >= 60.0:
                        group.popleft()
                    if len(group) >= 20:
                        waits.append(60.0 - (now - group[0]))
                delay = max(waits)
                if delay <= 0:
                    break
                await asyncio.sleep(delay)
            self._recent.append(now)
            self._chat_last[chat_id] = now
            if chat_id < 0:
                self._group_recent[chat_id].append(now)
            if len(self._chat_last) > 10_000:  # forget chats idle for a while
                self._chat_last = {c: t for c, t in self._chat_last.items() if now - t < 5}


class TelegramSender:
    def __init__(self, bot: Bot, limiter: RateLimiter) -> None:
        self.bot = bot
        self.limiter = limiter

    async def send(self, message: Message, customer: Customer) -> SendResult:
        chat_id = int(customer.external_id)
        try:
            for part in chunks(message.text):
                await self.limiter.wait(chat_id)
                await self.bot.send_message(chat_id, part)
        except TelegramRetryAfter as exc:
            return RetryLater("telegram 429", after_seconds=float(exc.retry_after), throttled=True)
        except TelegramForbiddenError:
            return Undeliverable("telegram 403: the customer blocked the bot or left")
        except (TelegramBadRequest, TelegramNotFound) as exc:
            if any(reason in exc.message.lower() for reason in GONE):
                return Undeliverable(f"telegram: {exc.message}")
            return RetryLater(f"telegram 400: {exc.message}")
        except (TelegramNetworkError, TelegramServerError) as exc:
            return RetryLater(f"telegram unreachable: {type(exc).__name__}")
        return Sent()
