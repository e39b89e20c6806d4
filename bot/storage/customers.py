from __future__ import annotations

import re
from datetime import datetime

from pymongo import ASCENDING, IndexModel

from bot.domain.models import Channel, Customer, utcnow
from bot.storage.consents import ConsentStateRepository
from bot.storage.database import Repository
from bot.storage.messages import SequenceRepository


class CustomerRepository(Repository[Customer]):
    collection_name = "customers"
    model = Customer
    indexes = (
        IndexModel([("channel", ASCENDING), ("external_id", ASCENDING)], unique=True),
        IndexModel([("updated_at", ASCENDING)]),  # retention
    )

    def __init__(
        self,
        *args: object,
        sequences: SequenceRepository,
        consent_states: ConsentStateRepository,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sequences = sequences
        self.consent_states = consent_states

    async def get_or_create(self, channel: Channel, external_id: str, locale: str) -> Customer:
        """One record per channel identity, even when two first messages race."""
        existing = await self.find(channel, external_id)
        if existing is not None:
            return existing
        fresh = Customer(channel=channel, external_id=external_id, locale=locale)
        inserted = await self._insert_unique(
            fresh, {"channel": channel, "external_id": external_id}
        )
        if inserted.created:  # their counters start empty, found by `_id` from now on
            await self.sequences.begin(inserted.item.id)
            await self.consent_states.begin(inserted.item.id)
        return inserted.item

    async def find(self, channel: Channel, external_id: str) -> Customer | None:
        doc = await self.collection.find_one({"channel": channel, "external_id": external_id})
        return None if doc is None else self._load(doc)

    async def with_contact(
        self, *, email: str | None = None, phone: str | None = None, limit: int = 20
    ) -> list[Customer]:
        """Customers with exactly this e-mail (any case) or phone number."""
        if email is not None:
            query: dict[str, object] = {
                "email": {"$regex": f"^{re.escape(email)}$", "$options": "i"}
            }
        else:
            query = {"phone": phone}
        cursor = self.collection.find(query).limit(limit)
        return [self._load(doc) async for doc in cursor]

    async def update_fields(self, customer_id: str, **fields: object) -> None:
        await self.collection.update_one(
            {"_id": customer_id}, {"$set": {**fields, "updated_at": utcnow()}}
        )

    async def untouched(
        self, before: datetime, *, after_id: str | None = None, limit: int | None = None
    ) -> list[Customer]:
        """Customers created and last updated before `before`, in id order from `after_id`
        (retention walks them a page at a time)."""
        query: dict[str, object] = {
            "created_at": {"$lt": before},
            "updated_at": {"$lt": before},
        }
        if after_id is not None:
            query["_id"] = {"$gt": after_id}
        cursor = self.collection.find(query).sort("_id", ASCENDING)
        if limit is not None:
            cursor = cursor.limit(limit)
        return [self._load(doc) async for doc in cursor]

    async def delete(self, customer_id: str) -> bool:
        result = await self.collection.delete_one({"_id": customer_id})
        return result.deleted_count == 1
