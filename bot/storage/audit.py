from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel

from bot.domain.models import AuditEntry
from bot.storage.database import Repository


class AuditRepository(Repository[AuditEntry]):
    """Who read or changed personal data, and when (C3.1.4). Append-only."""

    collection_name = "audit"
    model = AuditEntry
    indexes = (
        IndexModel([("at", DESCENDING)]),
        IndexModel([("target_type", ASCENDING), ("target_id", ASCENDING)]),
        IndexModel([("actor", ASCENDING), ("at", DESCENDING)]),
        IndexModel([("action", ASCENDING), ("at", DESCENDING)]),
    )

    async def append(self, entry: AuditEntry) -> AuditEntry:
        return await self.insert(entry)

    async def pseudonymize(self, customer_id: str, replacement: str) -> int:
        """After an erasure the trail stays (who looked, when) without the person's id."""
        first = await self.collection.update_many(
            {"target_id": customer_id}, {"$set": {"target_id": replacement}}
        )
        second = await self.collection.update_many(
            {"detail.customer": customer_id}, {"$set": {"detail.customer": replacement}}
        )
        return first.modified_count + second.modified_count

    async def recent(
        self,
        *,
        actor: str | None = None,
        target_id: str | None = None,
        action: str | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        query: dict[str, str] = {}
        if actor is not None:
            query["actor"] = actor
        if target_id is not None:
            query["target_id"] = target_id
        if action is not None:
            query["action"] = action
        cursor = self.collection.find(query).sort("at", DESCENDING).limit(limit)
        return [self._load(doc) async for doc in cursor]
