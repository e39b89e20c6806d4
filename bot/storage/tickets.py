from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

from bot.domain.models import (
    Category,
    Channel,
    Correction,
    Ticket,
    TicketStatus,
    TimelineEvent,
    utcnow,
)
from bot.domain.tickets import format_reference
from bot.storage.database import Inserted, Repository, attachment_refs_in_use
from bot.storage.locks import LockRepository
from bot.storage.messages import SequenceRepository

# Every change to a ticket's document holds its lock (no update is atomic on
# FerretDB v1): staff and customer writes queue for up to this long.
LOCK_WAIT = timedelta(seconds=5)

OPEN_STATUSES = [
    TicketStatus.RECEIVED,
    TicketStatus.ACKNOWLEDGED,
    TicketStatus.IN_PROGRESS,
    TicketStatus.WAITING_FOR_CUSTOMER,
]
CLOSED_STATUSES = [s for s in TicketStatus if s not in OPEN_STATUSES]


# Customers matched by a contact search, at most: a search for "1" must not build a huge $in.
CONTACT_MATCHES = 200
REFERENCE_RE = re.compile(r"^[A-Za-z]{1,6}-\d{4}-\d{1,}$")


@dataclass(frozen=True)
class TicketQuery:
    """What the staff queue asks for. Every filter is optional; None means "any"."""

    statuses: Sequence[TicketStatus] | None = None
    category: Category | None = None
    channel: Channel | None = None
    assignee: str | None = None  # a staff id
    unassigned: bool = False
    unanswered: bool = False  # no first response yet (C3.1.3)
    due_before: datetime | None = None  # response_due < this
    due_from: datetime | None = None  # response_due >= this
    search: str | None = None  # a reference, words of the text, or a contact
    skip: int = 0
    limit: int = 50


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
        IndexModel([("assignee", ASCENDING), ("response_due", ASCENDING)]),
        IndexModel([("response_due", ASCENDING)]),
        IndexModel([("status", ASCENDING), ("updated_at", ASCENDING)]),  # retention
    )

    def __init__(
        self, *args: object, locks: LockRepository, sequences: SequenceRepository, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.locks = locks
        self.sequences = sequences

    async def add(self, ticket: Ticket, *, prefix: str, year: int) -> Inserted[Ticket]:
        """Insert with the year's next reference number (FB-2026-000123).

        Once per dialogue run: a retried submit returns the ticket already filed. The
        number comes from the year's counter (`tickets:<year>`), not from a search of
        every ticket; the unique index on (ref_year, ref_number) stays the judge.
        """
        counter = f"tickets:{year}"
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
            counter=lambda highest, behind: self.sequences.next(counter, highest, behind=behind),
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

    async def all_for_customer(self, customer_id: str) -> list[Ticket]:
        """Every ticket of a customer, oldest first (export, erasure)."""
        cursor = self.collection.find({"customer_id": customer_id}).sort("created_at", ASCENDING)
        return [self._load(doc) async for doc in cursor]

    async def add_correction(
        self, ticket_id: str, correction: Correction, event: TimelineEvent
    ) -> bool:
        """A customer's correction, beside the original text (which stays as it was).
        False: there is no such ticket, or it was anonymized (an erasure came first)."""
        async with self.locks.hold(f"ticket:{ticket_id}", wait=LOCK_WAIT):
            result = await self.collection.update_one(
                {"_id": ticket_id, "anonymized_at": None},
                {
                    "$set": {"updated_at": event.at},
                    "$push": {
                        "corrections": correction.model_dump(mode="python"),
                        "events": event.model_dump(mode="python"),
                    },
                },
            )
            return result.modified_count == 1

    async def anonymize(
        self, ticket_id: str, *, at: datetime, forget_customer: bool
    ) -> tuple[int, int] | None:
        """Keep only what statistics need: category, rating, dates, status, the timeline's
        shape. The customer's words, corrections, files, the staff's free text (replies,
        notes and reasons can quote the customer) and the staff topic go. Returns the
        staff topic (chat, topic) it found and forgot, for the caller to delete."""
        async with self.locks.hold(f"ticket:{ticket_id}", wait=LOCK_WAIT):
            doc = await self.collection.find_one(
                {"_id": ticket_id},
                projection={"events": 1, "telegram_topic_id": 1, "telegram_topic_chat_id": 1},
            )
            if doc is None:
                return None
            events = [{**event, "detail": None} for event in doc.get("events", [])]
            fields: dict[str, Any] = {
                "text": "",
                "corrections": [],
                "attachments": [],
                "events": events,
                "telegram_topic_id": None,
                "telegram_topic_chat_id": None,
                "anonymized_at": at,
                "updated_at": at,
                "status_notices": {},  # their words to a customer who is gone
            }
            if forget_customer:
                fields["customer_id"] = ""
                # A form's or a logged call's key names the customer's identity there.
                fields["flow_id"] = f"erased:{ticket_id}"
            await self.collection.update_one({"_id": ticket_id}, {"$set": fields})
        chat_id, topic_id = doc.get("telegram_topic_chat_id"), doc.get("telegram_topic_id")
        return None if chat_id is None or topic_id is None else (int(chat_id), int(topic_id))

    async def withdraw_expanded_use(self, customer_id: str) -> list[str]:
        """Clear the expanded-use flag on the customer's tickets; the ids that changed."""
        cursor = self.collection.find(
            {"customer_id": customer_id, "expanded_use": True}, projection={"_id": 1}
        )
        ids = [str(doc["_id"]) async for doc in cursor]
        for ticket_id in ids:
            async with self.locks.hold(f"ticket:{ticket_id}", wait=LOCK_WAIT):
                await self.collection.update_one(
                    {"_id": ticket_id}, {"$set": {"expanded_use": False, "updated_at": utcnow()}}
                )
        return ids

    # Retention (C4.3)

    async def stale_closed(self, before: datetime, limit: int | None = None) -> list[str]:
        """Ids of closed tickets last updated before `before` that still hold personal data,
        the longest untouched first."""
        query = {"status": {"$in": CLOSED_STATUSES}, "updated_at": {"$lt": before}}
        cursor = self.collection.find({**query, "anonymized_at": None}, projection={"_id": 1}).sort(
            "updated_at", ASCENDING
        )
        if limit is not None:
            cursor = cursor.limit(limit)
        return [str(doc["_id"]) async for doc in cursor]

    async def with_personal_data(self, customer_id: str) -> list[str]:
        """Ids of the customer's tickets that are not anonymized."""
        cursor = self.collection.find(
            {"customer_id": customer_id, "anonymized_at": None}, projection={"_id": 1}
        )
        return [str(doc["_id"]) async for doc in cursor]

    async def file_refs_in_use(self, refs: list[str]) -> set[str]:
        """Which of `refs` an attachment of some ticket points to."""
        return await attachment_refs_in_use(self.collection, refs)

    async def latest_open(self, customer_id: str, last: str | None = None) -> Ticket | None:
        """The customer's newest open ticket. `last`, the ticket they filed last, is it
        whenever it is still open: one look-up by `_id` instead of a search."""
        if last is not None:
            ticket = await self.get(last)
            if ticket is not None and ticket.customer_id == customer_id:  # noqa: SIM102
                if ticket.status in OPEN_STATUSES:
                    return ticket
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

    async def drop_status_notice(self, ticket_id: str, notice_id: str) -> None:
        """The notice's message is queued: forget it (under the ticket's lock: FerretDB
        writes an update as a read and a separate write of the whole document)."""
        async with self.locks.hold(f"ticket:{ticket_id}", wait=LOCK_WAIT):
            await self.collection.update_one(
                {"_id": ticket_id}, {"$unset": {f"status_notices.{notice_id}": ""}}
            )

    async def with_status_notices(self) -> list[Ticket]:
        """Tickets with a status change whose message was never queued. A search of every
        ticket: for the dispatcher's start and now and then (restore). Every ticket has
        the field, most of them empty: the database leaves those out, not us."""
        cursor = self.collection.find({"status_notices": {"$exists": True, "$ne": {}}})
        return [self._load(doc) async for doc in cursor]

    async def add_event(self, ticket_id: str, event: TimelineEvent, **fields: object) -> bool:
        async with self.locks.hold(f"ticket:{ticket_id}", wait=LOCK_WAIT):
            return await self._apply(ticket_id, event, fields)

    async def delete(self, ticket_id: str) -> None:
        """A ticket nobody was told of (its filing was refused: the customer is being
        erased)."""
        async with self.locks.hold(f"ticket:{ticket_id}", wait=LOCK_WAIT):
            await self.collection.delete_one({"_id": ticket_id})

    async def forget_topic(self, ticket_id: str) -> None:
        """The ticket has no staff topic any more (it was deleted)."""
        await self.collection.update_one(
            {"_id": ticket_id},
            {"$set": {"telegram_topic_id": None, "telegram_topic_chat_id": None}},
        )

    async def first_response(self, ticket_id: str, event: TimelineEvent) -> bool:
        """Record the first response (`event`, at its time) unless one is recorded: under
        the ticket's lock, so two replies at once record one. Whether it was recorded."""
        async with self.locks.hold(f"ticket:{ticket_id}", wait=LOCK_WAIT):
            current = await self.collection.find_one(
                {"_id": ticket_id}, projection={"first_response_at": 1}
            )
            if current is None or current.get("first_response_at") is not None:
                return False
            return await self._apply(ticket_id, event, {"first_response_at": event.at})

    async def set_topic(self, ticket_id: str, chat_id: int, topic_id: int) -> bool:
        """The ticket's staff topic, unless it was anonymized meanwhile (an erasure came
        first: the caller deletes the topic it made)."""
        event = TimelineEvent(kind="topic", actor="system", detail=str(topic_id))
        fields: dict[str, object] = {
            "telegram_topic_id": topic_id,
            "telegram_topic_chat_id": chat_id,
        }
        async with self.locks.hold(f"ticket:{ticket_id}", wait=LOCK_WAIT):
            return await self._apply(ticket_id, event, fields, only={"anonymized_at": None})

    async def _apply(
        self,
        ticket_id: str,
        event: TimelineEvent,
        fields: dict[str, object],
        *,
        only: dict[str, object] | None = None,
    ) -> bool:
        """One write: the fields and the event (the caller holds the ticket's lock); with
        `only`, if the ticket matches it."""
        result = await self.collection.update_one(
            {"_id": ticket_id, **(only or {})},
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

    async def assign(
        self, ticket_id: str, assignee: str | None, event: TimelineEvent, *, expected: str | None
    ) -> bool:
        """Set who works on the ticket if it is still `expected`'s (None: nobody's), with the
        event on the timeline; False if someone changed it meanwhile (two agents taking the
        same ticket at once would both answer the customer).

        `assignee` is a top-level field only so the queue can filter on it; the
        timeline's "assigned" events stay the record (bot.domain.tickets.assignee_of).
        """
        async with self.locks.hold(f"ticket:{ticket_id}", wait=LOCK_WAIT):
            doc = await self.collection.find_one({"_id": ticket_id}, projection={"assignee": 1})
            if doc is None or doc.get("assignee") != expected:
                return False
            return await self._apply(ticket_id, event, {"assignee": assignee})

    async def _contact_matches(self, term: str) -> list[str]:
        """Ids of customers whose e-mail or phone contains `term`.

        FerretDB v1 has no $lookup, so the join with the customers collection is done
        here in two steps: customers first, then their tickets.
        """
        pattern = {"$regex": re.escape(term), "$options": "i"}
        alternatives: list[dict[str, Any]] = [{"email": pattern}]
        digits = re.sub(r"\D", "", term)
        if len(digits) >= 4:
            alternatives.append({"phone": {"$regex": re.escape(digits)}})
        customers = self.collection.database["customers"]
        cursor = customers.find({"$or": alternatives}, projection={"_id": 1}).limit(CONTACT_MATCHES)
        return [str(doc["_id"]) async for doc in cursor]

    async def _filter(self, query: TicketQuery) -> dict[str, Any]:
        conditions: list[dict[str, Any]] = []
        if query.statuses is not None:
            conditions.append({"status": {"$in": [s.value for s in query.statuses]}})
        if query.category is not None:
            conditions.append({"category": query.category.value})
        if query.channel is not None:
            conditions.append({"channel": query.channel.value})
        if query.unassigned:
            conditions.append({"assignee": None})
        elif query.assignee is not None:
            conditions.append({"assignee": query.assignee})
        if query.unanswered:
            conditions.append({"first_response_at": None})
        if query.due_before is not None:
            conditions.append({"response_due": {"$lt": query.due_before}})
        if query.due_from is not None:
            conditions.append({"response_due": {"$gte": query.due_from}})
        term = (query.search or "").strip()
        if term:
            if REFERENCE_RE.match(term):
                conditions.append({"reference": term.upper()})
            else:
                alternatives: list[dict[str, Any]] = [
                    {"reference": {"$regex": re.escape(term), "$options": "i"}},
                    {"text": {"$regex": re.escape(term), "$options": "i"}},
                ]
                customer_ids = await self._contact_matches(term)
                if customer_ids:
                    alternatives.append({"customer_id": {"$in": customer_ids}})
                conditions.append({"$or": alternatives})
        return {"$and": conditions} if conditions else {}

    async def search(self, query: TicketQuery) -> tuple[list[Ticket], int]:
        """One page of matching tickets, soonest response due first, and how many match."""
        mongo_filter = await self._filter(query)
        total = await self.collection.count_documents(mongo_filter)
        cursor = (
            self.collection.find(mongo_filter)
            .sort([("response_due", ASCENDING), ("_id", ASCENDING)])
            .skip(query.skip)
            .limit(query.limit)
        )
        return [self._load(doc) async for doc in cursor], total
