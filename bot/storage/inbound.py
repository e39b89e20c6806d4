from __future__ import annotations

from datetime import datetime

from pydantic import Field
from pymongo import ASCENDING, IndexModel

from bot.domain.models import Model, utcnow
from bot.storage.database import Repository


class InboundEvent(Model):
    """An inbound event that was handled: its channel key is the idempotency key."""

    id: str = Field(alias="_id")  # e.g. "telegram:<bot id>:<update id>"
    at: datetime = Field(default_factory=utcnow)


class InboundEventRepository(Repository[InboundEvent]):
    """Which channel events were handled, so a re-delivery is handled at most once.

    The key is the document's `_id`, unique by nature on every server.
    """

    collection_name = "inbound_events"
    model = InboundEvent
    indexes = (IndexModel([("at", ASCENDING)]),)  # retention removes old keys

    async def seen(self, key: str) -> bool:
        return await self.collection.find_one({"_id": key}, projection={"_id": 1}) is not None

    async def mark(self, key: str, at: datetime | None = None) -> bool:
        """Record the event as handled; False if it already was."""
        inserted = await self._insert_unique(InboundEvent(id=key, at=at or utcnow()), {"_id": key})
        return inserted.created
