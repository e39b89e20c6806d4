from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

from bot.domain.models import PrivacyRequest, PrivacyRequestKind, PrivacyRequestState
from bot.storage.database import Repository


class PrivacyRequestRepository(Repository[PrivacyRequest]):
    """Customers' requests about their data, with deadlines (C3.2.6)."""

    collection_name = "privacy_requests"
    model = PrivacyRequest
    indexes = (
        IndexModel([("state", ASCENDING), ("due_at", ASCENDING)]),
        IndexModel([("customer_id", ASCENDING), ("opened_at", DESCENDING)]),
        IndexModel([("opened_at", DESCENDING)]),
        IndexModel([("has_pending", ASCENDING)]),
    )

    async def add(self, request: PrivacyRequest) -> PrivacyRequest:
        return await self.insert(request)

    async def close(
        self, request_id: str, *, at: datetime, detail: dict[str, str] | None = None
    ) -> None:
        update: dict[str, object] = {"state": PrivacyRequestState.DONE, "done_at": at}
        for key, value in (detail or {}).items():
            update[f"detail.{key}"] = value
        await self.collection.update_one({"_id": request_id}, {"$set": update})

    async def set_fields(self, request_id: str, **fields: object) -> None:
        await self.collection.update_one({"_id": request_id}, {"$set": fields})

    async def open_requests(self, limit: int = 200) -> list[PrivacyRequest]:
        """Open requests, the soonest due first."""
        cursor = (
            self.collection.find({"state": PrivacyRequestState.OPEN})
            .sort([("due_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [self._load(doc) async for doc in cursor]

    async def recent(self, limit: int = 100) -> list[PrivacyRequest]:
        cursor = self.collection.find({}).sort("opened_at", DESCENDING).limit(limit)
        return [self._load(doc) async for doc in cursor]

    async def with_pending_work(self, limit: int = 100) -> list[PrivacyRequest]:
        cursor = self.collection.find({"has_pending": True}).limit(limit)
        return [self._load(doc) async for doc in cursor]

    async def add_pending(self, request_id: str, task: dict[str, Any]) -> None:
        await self.collection.update_one(
            {"_id": request_id}, {"$push": {"pending": task}, "$set": {"has_pending": True}}
        )

    async def unfinished_erasures(self, started_before: datetime) -> list[PrivacyRequest]:
        """Erasures that began before `started_before` and were never closed."""
        cursor = self.collection.find(
            {
                "kind": PrivacyRequestKind.ERASE,
                "state": PrivacyRequestState.OPEN,
                "detail.started_at": {"$lt": started_before.isoformat()},
            }
        ).limit(100)
        return [self._load(doc) async for doc in cursor]

    async def for_customer(self, customer_id: str) -> list[PrivacyRequest]:
        cursor = self.collection.find({"customer_id": customer_id}).sort("opened_at", DESCENDING)
        return [self._load(doc) async for doc in cursor]

    async def close_open_for_customer(
        self, customer_id: str, *, at: datetime, detail: dict[str, str]
    ) -> int:
        """Close what is still open for a customer (their data is gone: nothing to answer)."""
        update: dict[str, object] = {"state": PrivacyRequestState.DONE, "done_at": at}
        update.update({f"detail.{key}": value for key, value in detail.items()})
        result = await self.collection.update_many(
            {"customer_id": customer_id, "state": PrivacyRequestState.OPEN}, {"$set": update}
        )
        return result.modified_count

    async def forget_customer(self, customer_id: str) -> None:
        """After an erasure: the requests stay as the record, without the person's id."""
        await self.collection.update_many(
            {"customer_id": customer_id}, {"$set": {"customer_id": None}}
        )
