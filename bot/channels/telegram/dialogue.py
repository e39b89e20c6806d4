"""Router: the feedback dialogue in a private chat (text, files, buttons)."""

from __future__ import annotations

import contextlib

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, Message, User

from bot.channels.telegram.filters import checked_in_place
from bot.channels.telegram.keyboards import CONTROL, LANGUAGE, parse_option
from bot.channels.telegram.render import show
from bot.domain.flow import Command, Input
from bot.domain.models import Attachment, Channel
from bot.domain.text import N_, Text
from bot.services.dialogue import DialogueService

UNSUPPORTED = N_(
    "I can read text, photos and files. Stickers, voice messages, locations and the like "
    "cannot be added to feedback; please describe it in words instead."
)


def _who(user: User) -> tuple[str, str | None]:
    return str(user.id), user.language_code


async def _handle(message: Message, dialogue: DialogueService, inp: Input, event_key: str) -> None:
    assert message.from_user is not None  # noqa: S101 - private chats always have a sender
    user_id, hint = _who(message.from_user)
    replies = await dialogue.handle(
        Channel.TELEGRAM, user_id, inp, locale_hint=hint, idempotency_key=event_key
    )
    assert message.bot is not None  # noqa: S101 - set by the dispatcher
    await show(message.bot, message.chat.id, replies)


async def on_text(message: Message, dialogue: DialogueService, event_key: str) -> None:
    await _handle(message, dialogue, Input.text(message.text or ""), event_key)


async def on_photo(message: Message, dialogue: DialogueService, event_key: str) -> None:
    assert message.photo  # noqa: S101 - the filter guarantees it
    biggest = message.photo[-1]
    attachment = Attachment(kind="photo", file_ref=biggest.file_id, size=biggest.file_size)
    await _handle(message, dialogue, Input.file(attachment, message.caption or ""), event_key)


async def on_document(message: Message, dialogue: DialogueService, event_key: str) -> None:
    assert message.document is not None  # noqa: S101 - the filter guarantees it
    document = message.document
    attachment = Attachment(
        kind="document",
        file_ref=document.file_id,
        name=document.file_name,
        mime_type=document.mime_type,
        size=document.file_size,
    )
    await _handle(message, dialogue, Input.file(attachment, message.caption or ""), event_key)


async def on_anything_else(message: Message, dialogue: DialogueService) -> None:
    """Stickers, voice, locations...: say politely what works instead of staying silent."""
    assert message.from_user is not None  # noqa: S101 - private chats always have a sender
    assert message.bot is not None  # noqa: S101 - set by the dispatcher
    user_id, hint = _who(message.from_user)
    reply = await dialogue.say(Channel.TELEGRAM, user_id, Text(UNSUPPORTED), hint)
    await show(message.bot, message.chat.id, [reply])


async def on_button(callback: CallbackQuery, dialogue: DialogueService, event_key: str) -> None:
    # First, so the button stops spinning at once. Telegram refuses answers to queries
    # that are too old (after downtime): the press itself is still worth handling.
    with contextlib.suppress(TelegramBadRequest):
        await callback.answer()
    data = callback.data or ""
    user_id, hint = _who(callback.from_user)
    if data.startswith(LANGUAGE):
        replies = await dialogue.set_language(
            Channel.TELEGRAM, user_id, data.removeprefix(LANGUAGE)
        )
    else:
        if data.startswith(CONTROL):
            try:
                inp = Input.command(Command(data.removeprefix(CONTROL)))
            except ValueError:
                inp = Input.command(Command.HELP)
        else:
            step, value = parse_option(data)
            inp = Input.choice(value, step=step)
        replies = await dialogue.handle(
            Channel.TELEGRAM, user_id, inp, locale_hint=hint, idempotency_key=event_key
        )
    message = callback.message
    if isinstance(message, Message):
        # The question was answered: its buttons go, so an old prompt cannot be pressed again.
        # "Not modified" (pressed twice) or too old to edit: nothing left to do.
        with contextlib.suppress(TelegramBadRequest):
            await message.edit_reply_markup(reply_markup=None)
    assert callback.bot is not None  # noqa: S101 - set by the dispatcher
    await show(callback.bot, callback.from_user.id, replies)


def build_router() -> Router:
    """A new Router each time: a router belongs to one Dispatcher."""
    router = Router(name="dialogue")
    router.message.filter(checked_in_place(F.chat.type == ChatType.PRIVATE))
    router.callback_query.filter(checked_in_place(F.message.chat.type == ChatType.PRIVATE))
    router.message.register(on_text, checked_in_place(F.text))
    router.message.register(on_photo, checked_in_place(F.photo))
    router.message.register(on_document, checked_in_place(F.document))
    router.message.register(on_anything_else)  # last: whatever the others did not take
    router.callback_query.register(on_button, checked_in_place(F.data))
    return router
