from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, DESCENDING, IndexModel

from bot.domain.models import DeliveryState, Direction, Message
from bot.storage.database import Inserted, Repository, attachment_refs_in_use


class MessageRepository(Repository[Message]):
    """Every message of every conversation; outbound ones double as the outbox.

    An outbound message is inserted `pending`; a dispatcher takes the lock
    `delivery:<id>` (bot.storage.locks), re-reads it, sends it, and marks it sent
    or schedules a retry, so several dispatchers in several processes never send
    one message twice.
    """

    collection_name = "messages"
    model = Message
    indexes = (
        IndexModel([("idempotency_key", ASCENDING)], unique=True),
        IndexModel([("customer_id", ASCENDING), ("seq", ASCENDING)], unique=True),
        IndexModel([("ticket_id", ASCENDING), ("created_at", ASCENDING)]),
        IndexModel([("delivery.state", ASCENDING), ("delivery.next_attempt_at", ASCENDING)]),
    )

    async def append(self, message: Message) -> Inserted[Message]:
        """Store with the next per-customer sequence number; a repeated key stores nothing."""
        key = {"idempotency_key": message.idempotency_key}
        existing = await self.collection.find_one(key)
        if existing is not None:
            return Inserted(self._load(existing), created=False)
        return await self._insert_numbered(
            lambda seq: message.model_copy(update={"seq": seq}),
            scope={"customer_id": message.customer_id},
            field="seq",
            key=key,
        )

    async def by_idempotency_key(self, key: str) -> Message | None:
        doc = await self.collection.find_one({"idempotency_key": key})
        return None if doc is None else self._load(doc)

    async def latest_seq(self, customer_id: str) -> int:
        doc = await self.collection.find_one(
            {"customer_id": customer_id}, sort=[("seq", DESCENDING)], projection={"seq": 1}
        )
        return 0 if doc is None else int(doc["seq"])

    async def first_pending(self, customer_id: str) -> Message | None:
        """The customer's earliest outbound message still waiting: the head of their queue."""
        doc = await self.collection.find_one(
            {
                "customer_id": customer_id,
                "direction": Direction.OUTBOUND,
                "delivery.state": DeliveryState.PENDING,
            },
            sort=[("seq", ASCENDING)],
        )
        return None if doc is None else self._load(doc)

    async def defer(self, message_id: str, *, at: datetime) -> None:
        """Move the next attempt to `at`; no attempt is counted."""
        await self._set_delivery(message_id, next_attempt_at=at)

    async def after_seq(self, customer_id: str, seq: int, limit: int = 500) -> list[Message]:
        cursor = (
            self.collection.find({"customer_id": customer_id, "seq": {"$gt": seq}})
            .sort("seq", ASCENDING)
            .limit(limit)
        )
        return [self._load(doc) async for doc in cursor]

    async def for_ticket(self, ticket_id: str) -> list[Message]:
        cursor = self.collection.find({"ticket_id": ticket_id}).sort("seq", ASCENDING)
        return [self._load(doc) async for doc in cursor]

    async def all_for_customer(self, customer_id: str) -> list[Message]:
        cursor = self.collection.find({"customer_id": customer_id}).sort("seq", ASCENDING)
        return [self._load(doc) async for doc in cursor]

    async def delete_for_ticket(self, ticket_id: str) -> int:
        return (await self.collection.delete_many({"ticket_id": ticket_id})).deleted_count

    async def delete_for_customer(self, customer_id: str) -> int:
        return (await self.collection.delete_many({"customer_id": customer_id})).deleted_count

    async def last_at(self, customer_id: str) -> datetime | None:
        """When the customer's conversation last had a message (retention: activity)."""
        doc = await self.collection.find_one(
            {"customer_id": customer_id}, sort=[("seq", DESCENDING)], projection={"created_at": 1}
        )
        return None if doc is None else doc["created_at"]

    async def file_refs_in_use(self, refs: list[str]) -> set[str]:
        """Which of `refs` an attachment of some message points to."""
        return await attachment_refs_in_use(self.collection, refs)

    async def due(self, now: datetime, limit: int = 50) -> list[Message]:
        """Outbound messages waiting to be sent, oldest first (candidates, not claims)."""
        cursor = (
            self.collection.find(
                {
                    "direction": Direction.OUTBOUND,
                    "delivery.state": DeliveryState.PENDING,
                    "delivery.next_attempt_at": {"$lte": now},
                }
            )
            .sort("delivery.next_attempt_at", ASCENDING)
            .limit(limit)
        )
        return [self._load(doc) async for doc in cursor]

    async def _set_delivery(self, message_id: str, **fields: object) -> None:
        await self.collection.update_one(
            {"_id": message_id}, {"$set": {f"delivery.{k}": v for k, v in fields.items()}}
        )

    async def mark_sent(self, message_id: str, *, attempts: int, at: datetime) -> None:
        await self._set_delivery(
            message_id, state=DeliveryState.SENT, attempts=attempts, sent_at=at, last_error=None
        )

    async def schedule_retry(
        self, message_id: str, *, attempts: int, at: datetime, error: str
    ) -> None:
        await self._set_delivery(
            message_id, attempts=attempts, next_attempt_at=at, last_error=error
        )

    async def mark_undeliverable(self, message_id: str, *, attempts: int, error: str) -> None:
        await self._set_delivery(
            message_id, state=DeliveryState.UNDELIVERABLE, attempts=attempts, last_error=error
        )
