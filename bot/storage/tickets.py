from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import ASCENDING, DESCENDING, IndexModel

from bot.domain.models import Ticket, TicketStatus, TimelineEvent, utcnow
from bot.domain.tickets import format_reference
from bot.storage.database import Inserted, Repository
from bot.storage.locks import LockRepository

# Every change to a ticket's document holds its lock (no update is atomic on
# FerretDB v1): staff and customer writes queue for up to this long.
LOCK_WAIT = timedelta(seconds=5)

OPEN_STATUSES = [
    TicketStatus.RECEIVED,
    TicketStatus.ACKNOWLEDGED,
    TicketStatus.IN_PROGRESS,
    TicketStatus.WAITING_FOR_CUSTOMER,
]


class TicketRepository(Repository[Ticket]):
    collection_name = "tickets"
    model = Ticket
    indexes = (
        IndexModel([("reference", ASCENDING)], unique=True),
        IndexModel([("flow_id", ASCENDING)], unique=True),
        IndexModel([("ref_year", ASCENDING), ("ref_number", ASCENDING)], unique=True),
        IndexModel([("customer_id", ASCENDING), ("created_at", DESCENDING)]),
        IndexModel([("status", ASCENDING), ("response_due", ASCENDING)]),
        IndexModel([("telegram_topic_chat_id", ASCENDING), ("telegram_topic_id", ASCENDING)]),
    )

    def __init__(self, *args: object, locks: LockRepository, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.locks = locks

    async def add(self, ticket: Ticket, *, prefix: str, year: int) -> Inserted[Ticket]:
        """Insert with the year's next reference number (FB-2026-000123).

        Once per dialogue run: a retried submit returns the ticket already filed.
        """
        return await self._insert_numbered(
            lambda n: ticket.model_copy(
                update={
                    "reference": format_reference(prefix, year, n),
                    "ref_year": year,
                    "ref_number": n,
                }
            ),
            scope={"ref_year": year},
            field="ref_number",
            key={"flow_id": ticket.flow_id},
        )

    async def by_telegram_topic(self, chat_id: int, topic_id: int) -> Ticket | None:
        """Topic ids are per group: a new or migrated staff group starts counting again."""
        query = {"telegram_topic_chat_id": chat_id, "telegram_topic_id": topic_id}
        doc = await self.collection.find_one(query)
        return None if doc is None else self._load(doc)

    async def by_reference(self, reference: str) -> Ticket | None:
        doc = await self.collection.find_one({"reference": reference})
        return None if doc is None else self._load(doc)

    async def for_customer(self, customer_id: str, limit: int = 20) -> list[Ticket]:
        cursor = (
            self.collection.find({"customer_id": customer_id})
            .sort("created_at", DESCENDING)
            .limit(limit)
        )
        return [self._load(doc) async for doc in cursor]

    async def latest_open(self, customer_id: str) -> Ticket | None:
        doc = await self.collection.find_one(
            {"customer_id": customer_id, "status": {"$in": OPEN_STATUSES}},
            sort=[("created_at", DESCENDING)],
        )
        return None if doc is None else self._load(doc)

    async def transition(
        self, ticket_id: str, expected: TicketStatus, event: TimelineEvent, **fields: object
    ) -> bool:
        """Move status from `expected` to `event.to_status`, with the event on the timeline.

        False when another writer changed the status first (nothing is written).
        """
        async with self.locks.hold(f"ticket:{ticket_id}", wait=LOCK_WAIT):
            current = await self.collection.find_one({"_id": ticket_id}, projection={"status": 1})
            if current is None or current["status"] != expected:
                return False
            await self.collection.update_one(
                {"_id": ticket_id},
                {
                    "$set": {"status": event.to_status, "updated_at": event.at, **fields},
                    "$push": {"events": event.model_dump(mode="python")},
                },
            )
            return True

    async def add_event(self, ticket_id: str, event: TimelineEvent, **fields: object) -> bool:
        async with self.locks.hold(f"ticket:{ticket_id}", wait=LOCK_WAIT):
            result = await self.collection.update_one(
                {"_id": ticket_id},
                {
                    "$set": {"updated_at": utcnow(), **fields},
                    "$push": {"events": event.model_dump(mode="python")},
                },
            )
            return result.modified_count == 1

    async def overdue(self, now: datetime, limit: int = 100) -> list[Ticket]:
        cursor = (
            self.collection.find(
                {
                    "status": {"$in": OPEN_STATUSES},
                    "first_response_at": None,
                    "response_due": {"$lt": now},
                }
            )
            .sort("response_due", ASCENDING)
            .limit(limit)
        )
        return [self._load(doc) async for doc in cursor]
