"""OncePerUpdate's claim on an update, against the real database: kept while the update is
handled, and never brought back once it is marked handled."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, cast

from aiogram.types import TelegramObject, Update

from bot.channels.telegram.middlewares import OncePerUpdate
from bot.storage import Repositories


class LateRenewals:
    """The inbound collection, where a claim's renewal (a replace with an `until`) reaches
    the server 0.2 s after it is sent, whatever becomes of its sender meanwhile: as a
    command already on the wire does when the task that sent it is cancelled."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection
        self.late = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    async def replace_one(self, query: Any, document: Any, *args: Any, **kwargs: Any) -> Any:
        if document.get("until") is None:  # the handled mark: at once
            return await self._collection.replace_one(query, document, *args, **kwargs)
        self.late += 1
        later = self._later(query, document, *args, **kwargs)
        return await asyncio.shield(later)

    async def _later(self, query: Any, document: Any, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.2)
        return await self._collection.replace_one(query, document, *args, **kwargs)


async def test_a_renewal_on_its_way_when_the_handler_ends_does_not_bring_the_claim_back(
    repos: Repositories,
) -> None:
    late = LateRenewals(repos.inbound.collection)
    repos.inbound.collection = cast(Any, late)
    # Claimed again every 0.1 s; the handler ends at 0.15 s, while the first renewal
    # (sent at 0.1 s) is still on its way.
    once = OncePerUpdate(repos.inbound, 1, claim_ttl=timedelta(seconds=0.3))

    async def handler(event: TelegramObject, data: dict[str, Any]) -> str:
        await asyncio.sleep(0.15)
        return "answered"

    assert await once(handler, Update(update_id=41), {}) == "answered"
    assert late.late >= 1
    await asyncio.sleep(0.3)  # whatever was on its way has landed by now
    assert await repos.inbound.seen("telegram:1:41")  # still handled, not claimed again
