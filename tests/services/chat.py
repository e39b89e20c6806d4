"""Drive the dialogue service as a channel would."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.app import Container
from bot.domain.flow import Command, Input
from bot.domain.models import Attachment, Channel
from bot.services.dialogue import Rendered


@dataclass
class Chat:
    container: Container
    user: str
    locale: str | None = None
    channel: Channel = Channel.TELEGRAM
    last: list[Rendered] = field(default_factory=list)

    async def send(self, inp: Input) -> list[Rendered]:
        self.last = await self.container.dialogue.handle(
            self.channel, self.user, inp, locale_hint=self.locale
        )
        return self.last

    async def text(self, value: str) -> list[Rendered]:
        return await self.send(Input.text(value))

    async def choose(self, value: str) -> list[Rendered]:
        return await self.send(Input.choice(value))

    async def command(self, command: Command) -> list[Rendered]:
        return await self.send(Input.command(command))

    async def file(self, attachment: Attachment) -> list[Rendered]:
        return await self.send(Input.file(attachment))

    @property
    def step(self) -> str | None:
        return self.last[-1].step if self.last else None

    @property
    def error(self) -> str | None:
        return self.last[-1].error if self.last else None

    async def to_the_summary(self, text: str = "The parcel arrived two days late.") -> None:
        """The flow up to its summary, the last question before submit."""
        await self.command(Command.START)
        for value in ("yes", "yes", "yes", "logistics", "2"):
            await self.choose(value)
        await self.text(text)
        await self.choose("done")
        await self.choose("skip")
        assert self.step == "summary", self.last

    async def happy_path(self, text: str = "The parcel arrived two days late.") -> None:
        await self.to_the_summary(text)
        await self.choose("submit")
