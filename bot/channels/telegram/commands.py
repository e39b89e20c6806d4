"""Router: slash commands in a private chat, and the localized command menu."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command as CommandFilter
from aiogram.filters import CommandStart
from aiogram.types import BotCommand, BotCommandScopeAllPrivateChats, Message

from bot.channels.telegram.filters import checked_in_place
from bot.channels.telegram.keyboards import language_keyboard
from bot.channels.telegram.render import show
from bot.domain.flow import Command, Input
from bot.domain.models import Channel
from bot.domain.text import N_, Text
from bot.i18n import SUPPORTED, I18n
from bot.services.dialogue import DialogueService

MENU = (
    ("start", N_("Give feedback")),
    ("status", N_("My feedback and its status")),
    ("language", N_("Language: 中文 / English")),
    ("privacy", N_("My data and consents")),
    ("help", N_("Help")),
)
CHOOSE_LANGUAGE = N_("Choose your language:")


async def set_menu(bot: Bot, i18n: I18n) -> None:
    """The command menu in each language; Telegram picks it by the user's app language."""

    def commands(locale: str) -> list[BotCommand]:
        return [
            BotCommand(command=name, description=i18n.render(locale, Text(label)))
            for name, label in MENU
        ]

    scope = BotCommandScopeAllPrivateChats()
    for locale in SUPPORTED:
        await bot.set_my_commands(commands(locale), scope=scope, language_code=locale[:2])
    await bot.set_my_commands(commands(i18n.default), scope=scope)  # any other app language


def _user(message: Message) -> tuple[str, str | None]:
    assert message.from_user is not None  # noqa: S101 - private chats always have a sender
    return str(message.from_user.id), message.from_user.language_code


async def _run(message: Message, dialogue: DialogueService, command: Command, key: str) -> None:
    user_id, hint = _user(message)
    replies = await dialogue.handle(
        Channel.TELEGRAM, user_id, Input.command(command), locale_hint=hint, idempotency_key=key
    )
    assert message.bot is not None  # noqa: S101 - set by the dispatcher
    await show(message.bot, message.chat.id, replies)


async def start(message: Message, dialogue: DialogueService, event_key: str) -> None:
    await _run(message, dialogue, Command.START, event_key)


async def back(message: Message, dialogue: DialogueService, event_key: str) -> None:
    await _run(message, dialogue, Command.BACK, event_key)


async def cancel(message: Message, dialogue: DialogueService, event_key: str) -> None:
    await _run(message, dialogue, Command.CANCEL, event_key)


async def help_(message: Message, dialogue: DialogueService, event_key: str) -> None:
    await _run(message, dialogue, Command.HELP, event_key)


async def status(message: Message, dialogue: DialogueService) -> None:
    user_id, hint = _user(message)
    assert message.bot is not None  # noqa: S101 - set by the dispatcher
    await show(message.bot, message.chat.id, await dialogue.status(Channel.TELEGRAM, user_id, hint))


async def language(message: Message, dialogue: DialogueService) -> None:
    user_id, hint = _user(message)
    reply = await dialogue.say(Channel.TELEGRAM, user_id, Text(CHOOSE_LANGUAGE), hint)
    await message.answer(reply.text, reply_markup=language_keyboard())


async def privacy(message: Message, dialogue: DialogueService, event_key: str) -> None:
    await _run(message, dialogue, Command.PRIVACY, event_key)


async def unknown_command(message: Message, dialogue: DialogueService, event_key: str) -> None:
    await _run(message, dialogue, Command.HELP, event_key)


def build_router() -> Router:
    """A new Router each time: a router belongs to one Dispatcher."""
    router = Router(name="commands")
    router.message.filter(checked_in_place(F.chat.type == ChatType.PRIVATE))
    router.message.register(start, CommandStart())
    router.message.register(back, CommandFilter("back"))
    router.message.register(cancel, CommandFilter("cancel"))
    router.message.register(help_, CommandFilter("help"))
    router.message.register(status, CommandFilter("status"))
    router.message.register(language, CommandFilter("language"))
    router.message.register(privacy, CommandFilter("privacy"))
    router.message.register(unknown_command, checked_in_place(F.text.startswith("/")))
    return router
