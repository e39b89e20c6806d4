"""Test helpers that are real parts of the system, not stand-ins for it."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from bot.app import Container
from bot.config import Settings
from bot.domain.models import Customer, Message, Ticket
from bot.services.delivery import SendResult, Sent

T = TypeVar("T")


async def close_abandoned_sockets() -> None:
    """Close the socket PyMongo 4.20 leaves open when a client is closed while its monitor
    is connecting to a server that is not there: `_async_create_connection` closes it on
    errors but not on cancellation (PYTHON-5867), and a stored traceback keeps it alive
    until the end of the run, where its ResourceWarning failed a later test (seen once in
    a clean-clone run; under load, in about a third of runs of the test below).
    Await it right after closing such a client, with no other client connecting: it
    closes every TCP socket of the process that is neither connected nor listening."""
    await asyncio.sleep(0)  # a turn for the cancelled attempts to unwind
    for obj in gc.get_objects():
        try:
            if not isinstance(obj, socket.socket) or obj.fileno() == -1:
                continue
        except ReferenceError:  # a weak proxy whose object is gone (seen once in a clean run)
            continue
        if obj.type != socket.SOCK_STREAM:
            continue
        try:
            obj.getpeername()
            continue  # connected: someone's live connection
        except OSError:
            pass
        if obj.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            continue  # a server's
        obj.close()


def configured(settings: Settings, **overrides: Any) -> Settings:
    """The test settings with `overrides`, validated as if they came from the environment."""
    values = settings.model_dump()
    values.update(overrides)
    return Settings(_env_file=None, MONGODB_URI=values.pop("mongodb_uri"), **values)


@dataclass
class FixedClock:
    """A clock the test moves by hand (due dates, retries, leases)."""

    now: datetime = field(default_factory=lambda: datetime(2026, 3, 2, 2, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


class StaffViews:
    """A ticket listener (TicketService.listeners) that keeps what staff were told of."""

    def __init__(self) -> None:
        self.customer_words: list[str] = []
        self.staff_replies: list[str] = []

    async def ticket_filed(self, ticket: Ticket, customer: Customer) -> None:
        pass

    async def customer_message(self, ticket: Ticket, message: Message) -> None:
        self.customer_words.append(message.text)

    async def staff_message(self, ticket: Ticket, message: Message) -> None:
        self.staff_replies.append(message.text)


@dataclass
class RecordingSender:
    """A channel sender that keeps what it was asked to send; results can be scripted."""

    results: list[SendResult] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)
    delay: float = 0.0

    async def send(self, message: Message, customer: Customer) -> SendResult:
        if self.delay:
            await asyncio.sleep(self.delay)
        result = self.results.pop(0) if self.results else Sent()
        if isinstance(result, Sent):
            self.sent.append(message)
        return result

    def texts(self) -> list[str]:
        return [m.text for m in self.sent]


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    what: str,
    timeout: float = 15.0,  # noqa: ASYNC109 - the one knob a test needs, with a clear error
) -> T:
    """Poll `check` until it returns something other than None (database state has no events)."""
    try:
        async with asyncio.timeout(timeout):
            while (result := await check()) is None:  # noqa: ASYNC110 - no change events
                await asyncio.sleep(0.02)
            return result
    except TimeoutError:
        raise AssertionError(f"waited {timeout}s for {what}") from None


async def everything_stored(container: Container) -> str:
    """Every document of every collection, as text: what a search for a person's traces
    after an erasure goes through (C3.2.6)."""
    db = container.database.db
    chunks: list[str] = []
    for name in await db.list_collection_names():
        chunks += [
            f"{name}: {json.dumps(doc, default=str, ensure_ascii=False)}"
            async for doc in db[name].find({})
        ]
    return "\n".join(chunks)
