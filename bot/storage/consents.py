from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, DESCENDING, IndexModel

from bot.domain.models import ConsentPurpose, ConsentRecord
from bot.storage.database import Repository


class ConsentRepository(Repository[ConsentRecord]):
    """The append-only consent ledger: records are inserted, never updated."""

    collection_name = "consents"
    model = ConsentRecord
    indexes = (IndexModel([("customer_id", ASCENDING), ("seq", ASCENDING)], unique=True),)

    async def append(self, record: ConsentRecord) -> ConsentRecord:
        inserted = await self._insert_numbered(
            lambda seq: record.model_copy(update={"seq": seq}),
            scope={"customer_id": record.customer_id},
            field="seq",
        )
        return inserted.item

    async def history(self, customer_id: str) -> list[ConsentRecord]:
        cursor = self.collection.find({"customer_id": customer_id}).sort("seq", ASCENDING)
        return [self._load(doc) async for doc in cursor]

    async def last_at(self, customer_id: str) -> datetime | None:
        """When the customer last gave or withdrew a consent (retention: activity)."""
        doc = await self.collection.find_one(
            {"customer_id": customer_id}, sort=[("seq", DESCENDING)], projection={"at": 1}
        )
        return None if doc is None else doc["at"]

    async def delete_for_customer(self, customer_id: str) -> int:
        return (await self.collection.delete_many({"customer_id": customer_id})).deleted_count

    async def current(self, customer_id: str) -> dict[ConsentPurpose, ConsentRecord]:
        """The state in force: the latest record per purpose."""
        state: dict[ConsentPurpose, ConsentRecord] = {}
        for record in await self.history(customer_id):
            state[record.purpose] = record
        return state
