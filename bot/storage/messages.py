from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from bot.domain.models import DeliveryState, Direction, Message
from bot.storage.database import (
    DatabaseUnavailable,
    Inserted,
    Repository,
    attachment_refs_in_use,
)

# How long storing a message's outbox entry is tried through a database outage.
OUTBOX_RETRY_SECONDS = 15.0


def message_id(idempotency_key: str) -> str:
    """A message's `_id`, derived from its idempotency key: a repeated input is found, and
    refused by the `_id` index, with a look-up by `_id` (a search by key scans on FerretDB)."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


class Sequence(BaseModel):
    customer_id: str = Field(alias="_id")
    last: int


class SequenceRepository(Repository[Sequence]):
    """The last message number of each customer (by customer id), and of each year's
    tickets (`tickets:<year>`: TicketRepository.add).

    Numbering a message used to mean finding the customer's highest number among all
    messages: a scan of the whole collection on FerretDB, slower as messages pile up.
    Now it is one increment by `_id`. The unique index (customer_id, seq) of messages
    stays the judge: FerretDB's increments are not atomic, and a writer that got a number
    already taken takes the next one.
    """

    collection_name = "message_sequences"
    model = Sequence

    async def begin(self, customer_id: str) -> None:
        """A new customer's counter, at 0 (so their first message needs no search)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.collection.insert_one({"_id": customer_id, "last": 0})

    async def next(
        self, key: str, highest: Callable[[], Awaitable[int]], *, behind: bool = False
    ) -> int:
        """The counter `key` plus one. `highest` (a search) starts a missing counter, and
        moves one forward that is `behind`: its last number was found taken (its numbers
        were stored without it, e.g. by a process that lost an increment)."""
        if behind:
            await self.collection.update_one({"_id": key}, {"$max": {"last": await highest()}})
        for _ in range(3):
            doc = await self.collection.find_one_and_update(
                {"_id": key}, {"$inc": {"last": 1}}, return_document=ReturnDocument.AFTER
            )
            if doc is not None:
                return int(doc["last"])
            # No counter (numbered before counters existed): start from what is stored.
            with contextlib.suppress(DuplicateKeyError):  # another writer started it
                await self.collection.insert_one({"_id": key, "last": await highest()})
        raise RuntimeError("counter keeps disappearing")  # a customer erased meanwhile

    async def last(self, customer_id: str) -> int | None:
        doc = await self.collection.find_one({"_id": customer_id})
        return None if doc is None else int(doc["last"])

    async def forget(self, customer_id: str) -> None:
        await self.collection.delete_one({"_id": customer_id})


class OutboxEntry(BaseModel):
    id: str = Field(alias="_id")  # the message's
    customer_id: str
    seq: int
    next_attempt_at: datetime


class OutboxRepository(Repository[OutboxEntry]):
    """The outbound messages still to be sent, one small document each.

    The dispatchers look for due work several times a second. Asked of all messages,
    that question cost a scan of every message ever stored on FerretDB; asked here, it
    costs the few waiting. An entry goes when its message is settled. The message's own
    `delivery` stays the record: an entry missing for a pending message (a process died
    between the two writes) is put back by `MessageRepository.restore_outbox`.
    """

    collection_name = "outbox"
    model = OutboxEntry
    indexes = (
        IndexModel([("next_attempt_at", ASCENDING)]),
        IndexModel([("customer_id", ASCENDING), ("seq", ASCENDING)]),
    )

    async def add(self, message: Message) -> bool:
        entry = OutboxEntry(
            _id=message.id,
            customer_id=message.customer_id,
            seq=message.seq,
            next_attempt_at=message.delivery.next_attempt_at,
        )
        try:
            await self.collection.insert_one(self._dump(entry))
        except DuplicateKeyError:
            return False
        return True

    async def due(self, now: datetime, limit: int) -> list[OutboxEntry]:
        cursor = (
            self.collection.find({"next_attempt_at": {"$lte": now}})
            .sort("next_attempt_at", ASCENDING)
            .limit(limit)
        )
        return [self._load(doc) async for doc in cursor]

    async def head(self, customer_id: str) -> OutboxEntry | None:
        doc = await self.collection.find_one({"customer_id": customer_id}, sort=[("seq", 1)])
        return None if doc is None else self._load(doc)

    async def reschedule(self, message_id: str, at: datetime) -> None:
        await self.collection.update_one({"_id": message_id}, {"$set": {"next_attempt_at": at}})

    async def remove(self, message_id: str) -> None:
        await self.collection.delete_one({"_id": message_id})

    async def delete_for_customer(self, customer_id: str) -> int:
        return (await self.collection.delete_many({"customer_id": customer_id})).deleted_count


class MessageRepository(Repository[Message]):
    """Every message of every conversation; the outbound ones waiting are in the outbox.

    An outbound message is inserted `pending`, with an outbox entry; a dispatcher takes
    the lock `delivery:<id>` (bot.storage.locks), re-reads it, sends it, and marks it
    sent (the entry goes) or schedules a retry, so several dispatchers in several
    processes never send one message twice.
    """

    collection_name = "messages"
    model = Message
    indexes = (
        IndexModel([("idempotency_key", ASCENDING)], unique=True),
        IndexModel([("customer_id", ASCENDING), ("seq", ASCENDING)], unique=True),
        IndexModel([("ticket_id", ASCENDING), ("created_at", ASCENDING)]),
        IndexModel([("delivery.state", ASCENDING), ("delivery.next_attempt_at", ASCENDING)]),
    )

    def __init__(
        self,
        *args: object,
        sequences: SequenceRepository,
        outbox: OutboxRepository,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sequences = sequences
        self.outbox = outbox

    async def append(self, message: Message, attempts: int = 50) -> Inserted[Message]:
        """Store with the next per-customer sequence number; a repeated key stores nothing.

        Inserted first and asked afterwards: the `_id` (from the key) or the key's own
        index refuses a repeat, and only then is the stored one read.
        """
        # One customer's messages are numbered one at a time in this process: FerretDB's
        # increments are not atomic, so two at once would often draw the same number and
        # cost a retry each (under load, when one customer's inputs overlap).
        async with self._numbering.hold(message.customer_id):
            return await self._append(message, attempts)

    async def _append(self, message: Message, attempts: int) -> Inserted[Message]:
        mid = message_id(message.idempotency_key)
        key = message.idempotency_key
        for attempt in range(attempts):
            seq = await self.sequences.next(
                message.customer_id, lambda: self._highest_seq(message.customer_id)
            )
            item = message.model_copy(update={"id": mid, "seq": seq})
            try:
                await self.collection.insert_one(self._dump(item))
            except DuplicateKeyError as exc:
                existing = await self._refused_by(exc, key, collisions=attempt + 1)
                if existing is not None:
                    await self._to_outbox(existing)  # if the first writer died before it
                    return Inserted(existing, created=False)
                # The number was taken (two writers at once): take the next one.
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311
                continue
            await self._to_outbox(item)
            return Inserted(item, created=True)
        raise RuntimeError(f"no free message number after {attempts} tries")

    async def _refused_by(
        self, exc: DuplicateKeyError, key: str, *, collisions: int
    ) -> Message | None:
        """The message already stored under `key` that refused an insert, or None when what
        refused it was the message number (two writers numbered at once).

        Never a search by key while numbers collide: on FerretDB that is a scan of every
        message, and numbers collide exactly when one customer's inputs overlap, under
        load; a scan each time made the load a collapse (docs/performance.md). MongoDB
        names the index that refused; FerretDB does not, so there the search for a key
        stored before ids came from keys is made only once a number was refused 3 times.
        """
        pattern = (exc.details or {}).get("keyPattern")  # MongoDB's, not FerretDB's
        legacy = "idempotency_key" in pattern if isinstance(pattern, dict) else collisions == 3
        return await self.by_idempotency_key(key, legacy=legacy)

    async def by_idempotency_key(self, key: str, *, legacy: bool = True) -> Message | None:
        """The message stored under `key`; with `legacy`, also one stored before ids came
        from keys (a search by key: a scan of every message on FerretDB)."""
        doc = await self.collection.find_one({"_id": message_id(key)})
        if doc is None and legacy:
            doc = await self.collection.find_one({"idempotency_key": key})
        return None if doc is None else self._load(doc)

    async def latest_seq(self, customer_id: str) -> int:
        """The customer's highest message number (0: none), or a little above it: a
        number is counted before its message is stored, and one may never be."""
        last = await self.sequences.last(customer_id)
        return await self._highest_seq(customer_id) if last is None else last

    async def _to_outbox(self, message: Message) -> None:
        """The stored message's outbox entry. Tried again through a short outage: a
        message kept without its entry is not seen by the dispatchers (its customer's
        later messages would go first) until `restore_outbox` finds it."""
        if message.direction is not Direction.OUTBOUND or (
            message.delivery.state is not DeliveryState.PENDING
        ):
            return
        deadline = time.monotonic() + OUTBOX_RETRY_SECONDS
        pause = 0.1
        while True:
            try:
                await self.outbox.add(message)
            except DatabaseUnavailable:
                if time.monotonic() + pause > deadline:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
            else:
                return

    async def restore_outbox(self) -> int:
        """Put back the entries of pending messages that have none (a process died between
        storing a message and its entry); returns how many. A scan of every message: for
        a dispatcher's start and now and then, not for every round."""
        cursor = self.collection.find(
            {"direction": Direction.OUTBOUND, "delivery.state": DeliveryState.PENDING}
        )
        restored = 0
        async for doc in cursor:
            restored += await self.outbox.add(self._load(doc))
        return restored

    async def reaches(self, customer_id: str, seq: int) -> bool:
        """Whether the customer's messages go as far as number `seq` (a device's last)."""
        last = await self.sequences.last(customer_id)
        if last is not None and last >= seq:
            return True
        # No counter, or one behind: FerretDB's increments are not atomic, so ask the
        # messages themselves before telling a device its messages are gone.
        return await self._highest_seq(customer_id) >= seq

    async def _highest_seq(self, customer_id: str) -> int:
        doc = await self.collection.find_one(
            {"customer_id": customer_id}, sort=[("seq", DESCENDING)], projection={"seq": 1}
        )
        return 0 if doc is None else int(doc["seq"])

    async def first_pending(self, customer_id: str) -> Message | None:
        """The customer's earliest outbound message still waiting: the head of their queue."""
        while (entry := await self.outbox.head(customer_id)) is not None:
            message = await self.get(entry.id)
            if message is not None and message.delivery.state is DeliveryState.PENDING:
                return message
            await self.outbox.remove(entry.id)  # settled, or deleted with its ticket
        return None

    async def defer(self, message_id: str, *, at: datetime) -> None:
        """Leave the message for `at` (its queue's head waits until then); no attempt is
        counted, and the message itself keeps its own time."""
        await self.outbox.reschedule(message_id, at)

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
        deleted = (await self.collection.delete_many({"customer_id": customer_id})).deleted_count
        await self.outbox.delete_for_customer(customer_id)
        await self.sequences.forget(customer_id)
        return deleted

    async def last_at(self, customer_id: str) -> datetime | None:
        """When the customer's conversation last had a message (retention: activity)."""
        doc = await self.collection.find_one(
            {"customer_id": customer_id}, sort=[("seq", DESCENDING)], projection={"created_at": 1}
        )
        return None if doc is None else doc["created_at"]

    async def file_refs_in_use(self, refs: list[str]) -> set[str]:
        """Which of `refs` an attachment of some message points to."""
        return await attachment_refs_in_use(self.collection, refs)

    async def due(self, now: datetime, limit: int = 50) -> list[OutboxEntry]:
        """Outbound messages waiting to be sent, oldest first (candidates, not claims)."""
        return await self.outbox.due(now, limit)

    async def _set_delivery(self, message_id: str, **fields: object) -> None:
        await self.collection.update_one(
            {"_id": message_id}, {"$set": {f"delivery.{k}": v for k, v in fields.items()}}
        )

    async def mark_sent(self, message_id: str, *, attempts: int, at: datetime) -> None:
        await self._set_delivery(
            message_id, state=DeliveryState.SENT, attempts=attempts, sent_at=at, last_error=None
        )
        await self.outbox.remove(message_id)

    async def schedule_retry(
        self, message_id: str, *, attempts: int, at: datetime, error: str, parts_sent: int = 0
    ) -> None:
        await self._set_delivery(
            message_id,
            attempts=attempts,
            next_attempt_at=at,
            last_error=error,
            parts_sent=parts_sent,
        )
        await self.outbox.reschedule(message_id, at)

    async def mark_undeliverable(self, message_id: str, *, attempts: int, error: str) -> None:
        await self._set_delivery(
            message_id, state=DeliveryState.UNDELIVERABLE, attempts=attempts, last_error=error
        )
        await self.outbox.remove(message_id)
