"""Prompts as Telegram messages: inline keyboards for options and controls."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.services.dialogue import Rendered, RenderedOption

# callback_data prefixes (Telegram allows 64 bytes; every value of ours is short)
OPTION, CONTROL, LANGUAGE = "o:", "c:", "l:"
TELEGRAM_TEXT_LIMIT = 4096
LANGUAGES = (("zh_CN", "中文"), ("en", "English"))


def option_data(step: str | None, value: str) -> str:
    """`o:<step>:<value>`: a button answers the question it was shown with, no other."""
    return f"{OPTION}{step}:{value}" if step else OPTION + value


def parse_option(data: str) -> tuple[str | None, str]:
    step, sep, value = data.removeprefix(OPTION).partition(":")
    return (step, value) if sep else (None, step)


def _rows(
    options: tuple[RenderedOption, ...], step: str | None, per_row: int
) -> list[list[InlineKeyboardButton]]:
    buttons = [
        InlineKeyboardButton(text=o.label, callback_data=option_data(step, o.value))
        for o in options
    ]
    return [buttons[i : i + per_row] for i in range(0, len(buttons), per_row)]


def keyboard(reply: Rendered) -> InlineKeyboardMarkup | None:
    if not reply.options and not reply.controls:
        return None
    # Short labels (ratings) sit side by side; sentences get a row each.
    per_row = 5 if reply.step == "rating" else 2 if reply.step == "category" else 1
    rows = _rows(reply.options, reply.step, per_row)
    controls = [
        InlineKeyboardButton(text=c.label, callback_data=CONTROL + c.value.removeprefix("cmd:"))
        for c in reply.controls
    ]
    if controls:
        rows.append(controls)
    return InlineKeyboardMarkup(inline_keyboard=rows)


def language_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=label, callback_data=LANGUAGE + code)]
            for code, label in LANGUAGES
        ]
    )


def chunks(text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Split at line breaks where possible; Telegram refuses messages over 4096 characters."""
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        cut = cut if cut > limit // 2 else limit
        parts.append(text[:cut])
        text = text[cut:].lstrip("\n")
    if text:
        parts.append(text)
    return parts
