"""Run the whole service against the fake Bot API, and play a Telegram customer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot.config import Settings
from bot.domain.models import Channel, Ticket
from bot.domain.privacy import conversation_key
from tests.channels.service import Service, serving
from tests.fake_telegram import Call, FakeTelegram
from tests.support import configured, eventually


def telegram_settings(settings: Settings, fake: FakeTelegram, **overrides: Any) -> Settings:
    """The test settings, pointed at the fake Bot API; validated like the environment is."""
    return configured(
        settings,
        telegram_token=fake.token,
        telegram_api_base=fake.base_url,
        telegram_polling_timeout=1,
        **overrides,
    )


@asynccontextmanager
async def running(settings: Settings, fake: FakeTelegram) -> AsyncIterator[Service]:
    """The service with its Telegram channel started against the fake."""
    started = len(fake.calls_of("setMyCommands"))
    async with serving(settings) as service:
        # set_menu runs right before polling starts or the webhook is set
        await fake.wait_for("setMyCommands", count=started + 3, timeout=20)
        await fake.wait_for(lambda c: c.method in ("getUpdates", "setWebhook"), timeout=20)
        yield service


def parse_button(data: str) -> str:
    """The value of a button: `o:<step>:<value>`, `c:<command>` or `l:<locale>`."""
    kind, _, rest = data.partition(":")
    return rest.partition(":")[2] if kind == "o" else rest


class TelegramCustomer:
    """A customer in a private chat with the bot, driven through the fake server."""

    def __init__(
        self, fake: FakeTelegram, service: Service, user_id: int, language_code: str = "en"
    ) -> None:
        self.fake = fake
        self.service = service
        self.user_id = user_id
        self.language_code = language_code

    async def handled(self, update: dict[str, Any]) -> None:
        """Wait until the bot has handled (and recorded) this update."""
        key = f"telegram:{self.fake.bot_id}:{update['update_id']}"
        inbound = self.service.container.repos.inbound

        async def seen() -> bool | None:
            return True if await inbound.seen(key) else None

        try:
            await eventually(seen, f"update {key} to be handled")
        except AssertionError as exc:
            recent = [c.describe() for c in self.fake.calls if c.method != "getUpdates"][-10:]
            raise AssertionError(f"{exc}; last calls: {recent}") from None

    async def says(self, text: str) -> dict[str, Any]:
        update = self.fake.user_text(self.user_id, text, language_code=self.language_code)
        await self.handled(update)
        return update

    async def command(self, name: str) -> dict[str, Any]:
        update = self.fake.user_command(self.user_id, name, language_code=self.language_code)
        await self.handled(update)
        return update

    async def press(self, value: str) -> dict[str, Any]:
        """Press the button whose callback data ends with `value` on the latest prompt."""
        prompt = self.last_prompt()
        buttons = [b for row in prompt.params["reply_markup"]["inline_keyboard"] for b in row]
        matching = [b for b in buttons if parse_button(b["callback_data"]) == value]
        assert matching, f"no button {value!r} on {prompt.params['text']!r}: {buttons}"
        update = self.fake.user_callback(
            self.user_id,
            matching[0]["callback_data"],
            message_id=prompt.result["message_id"],
            language_code=self.language_code,
        )
        await self.handled(update)
        return update

    def last_prompt(self) -> Call:
        prompts = [
            c
            for c in self.fake.calls_of("sendMessage")
            if c.chat_id == self.user_id and not c.failed and c.params.get("reply_markup")
        ]
        assert prompts, "the bot has not asked anything yet"
        return prompts[-1]

    def texts(self) -> list[str]:
        return self.fake.sent_texts(self.user_id)

    async def give_feedback(self, text: str, *, rating: str = "2") -> Ticket:
        """The whole flow, from /start to submit; returns the ticket filed."""
        await self.command("start")
        for value in ("yes", "yes", "yes", "logistics", rating):
            await self.press(value)
        await self.says(text)
        for value in ("done", "skip", "submit"):
            await self.press(value)
        return await self.ticket()

    async def ticket(self) -> Ticket:
        repos = self.service.container.repos
        customer = await repos.customers.find(Channel.TELEGRAM, str(self.user_id))
        assert customer is not None
        ticket = await repos.tickets.latest_open(customer.id)
        assert ticket is not None
        return ticket

    async def step(self) -> str | None:
        key = conversation_key(Channel.TELEGRAM.value, str(self.user_id))
        conversation = await self.service.container.repos.conversations.get(key)
        return None if conversation is None else conversation.step
