"""Sending dialogue replies to a Telegram chat (prompts are replies, not outbox messages)."""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot
from aiogram.exceptions import TelegramForbiddenError, TelegramRetryAfter
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup

from bot.channels.telegram.keyboards import chunks, keyboard
from bot.services.dialogue import Rendered
from bot.services.privacy_dialogue import ExportFile

# A reply is what the customer waits for right now: wait out Telegram's 429 a few times
# rather than drop it. If it still fails, the update is not marked handled, and a
# re-delivery shows the current question again (the dialogue does not apply it twice).
log = logging.getLogger(__name__)

REPLY_TRIES = 3
LONGEST_WAIT_SECONDS = 30.0


async def _send(
    bot: Bot,
    chat_id: int,
    text: str,
    markup: InlineKeyboardMarkup | None,
    file: ExportFile | None = None,
) -> bool:
    """Send one message, or one file; False when the chat is gone (blocked, deleted)."""
    for attempt in range(1, REPLY_TRIES + 1):
        try:
            if file is None:
                await bot.send_message(chat_id, text, reply_markup=markup)
            else:
                document = BufferedInputFile(file.content, filename=file.name)
                await bot.send_document(chat_id, document)
        except TelegramForbiddenError:
            log.info("reply not sent: the customer blocked the bot")
            return False
        except TelegramRetryAfter as exc:
            if attempt == REPLY_TRIES or exc.retry_after > LONGEST_WAIT_SECONDS:
                raise
            await asyncio.sleep(exc.retry_after)
        else:
            return True
    return False


async def show(bot: Bot, chat_id: int, replies: list[Rendered]) -> None:
    for reply in replies:
        parts = chunks(reply.text)
        for part in parts[:-1]:
            if not await _send(bot, chat_id, part, None):
                return
        if not await _send(bot, chat_id, parts[-1], keyboard(reply)):
            return
        if reply.file is not None and not await _send(bot, chat_id, "", None, reply.file):
            return
