"""A terminal channel for developers: `python -m bot chat` runs the real dialogue.

Same services, same database, same delivery path as Telegram and the widget:
outbound messages (the acknowledgement, staff replies) arrive through the
delivery service and are printed as they are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from bot.app import Container, tool_container
from bot.config import Settings
from bot.domain.flow import Command, Input
from bot.domain.models import Attachment, Channel, Customer, Message
from bot.services.delivery import SendResult, Sent
from bot.services.dialogue import Rendered

COMMANDS = {
    "/back": Command.BACK,
    "/cancel": Command.CANCEL,
    "/help": Command.HELP,
    "/start": Command.START,
}
USAGE = (
    "Type an answer, or the number of an option. Commands: /start /back /cancel /help /status "
    "/language en|zh_CN /file PATH /quit"
)


class TerminalSender:
    async def send(self, message: Message, customer: Customer) -> SendResult:
        print(f"\n[message] {message.text}\n", flush=True)
        return Sent()


def show(replies: list[Rendered]) -> list[str]:
    """Print replies; return the values that numbers typed next stand for."""
    values: list[str] = []
    for reply in replies:
        print(f"\n{reply.text}")
        for option in (*reply.options, *reply.controls):
            values.append(option.value)
            print(f"  {len(values)}. {option.label}")
    return values


def parse_line(line: str, values: list[str]) -> Input | None:
    text = line.strip()
    if text in COMMANDS:
        return Input.command(COMMANDS[text])
    if text.isdigit() and 1 <= int(text) <= len(values):
        value = values[int(text) - 1]
        if value.startswith("cmd:"):
            return Input.command(Command(value.removeprefix("cmd:")))
        return Input.choice(value)
    if text.startswith("/file "):
        path = Path(text.removeprefix("/file ").strip())
        if not path.is_file():
            return None
        return Input.file(
            Attachment(
                kind="document",
                file_ref=f"terminal:{path.name}",
                name=path.name,
                size=path.stat().st_size,
            )
        )
    return Input.text(line)


async def run_chat(settings: Settings, *, user: str, locale: str | None) -> int:
    async with tool_container(settings) as container:
        return await _chat(container, user=user, locale=locale)


async def _chat(container: Container, *, user: str, locale: str | None) -> int:
    container.delivery.register(Channel.TERMINAL, TerminalSender())
    dispatcher = asyncio.create_task(container.delivery.run())
    dialogue = container.dialogue
    try:
        print(USAGE)
        values = show(
            await dialogue.handle(
                Channel.TERMINAL, user, Input.command(Command.START), locale_hint=locale
            )
        )
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line or line.strip() == "/quit":
                break
            stripped = line.strip()
            if stripped == "/status":
                values = show(await dialogue.status(Channel.TERMINAL, user, locale))
                continue
            if stripped.startswith("/language"):
                wanted = stripped.removeprefix("/language").strip() or "en"
                values = show(await dialogue.set_language(Channel.TERMINAL, user, wanted))
                continue
            inp = parse_line(line, values)
            if inp is None:
                print(USAGE)
                continue
            values = show(await dialogue.handle(Channel.TERMINAL, user, inp, locale_hint=locale))
            await asyncio.sleep(0.2)  # let the dispatcher print what the step sent
    finally:
        container.delivery.stop()
        await asyncio.wait([dispatcher], timeout=10)
        dispatcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dispatcher
    return 0
