from __future__ import annotations

import re
from datetime import datetime

from pydantic import Field
from pymongo import ASCENDING, IndexModel
from pymongo.errors import BulkWriteError

from bot.domain.models import Channel, Customer, Model, utcnow
from bot.domain.privacy import conversation_key
from bot.storage.consents import ConsentStateRepository
from bot.storage.database import Repository
from bot.storage.messages import SequenceRepository

DUPLICATE_KEY = 11000
BACKFILL_PAGE = 500


def _key(channel: Channel, external_id: str) -> str:
    return conversation_key(channel.value, external_id)


class CustomerErased(LookupError):
    """The customer was erased, or their erasure began, while something was written for
    them: it was taken back (Repositories.fence)."""

    def __init__(self, customer_id: str) -> None:
        super().__init__(customer_id)
        self.customer_id = customer_id


class CustomerKey(Model):
    """Which customer a channel identity is. The id is the identity's hash, as the
    dialogue's (conversation_key): the customer record stays the one place that holds
    the channel's user id."""

    id: str = Field(alias="_id")
    customer_id: str


class CustomerKeyRepository(Repository[CustomerKey]):
    """A customer by channel identity, found by `_id`.

    customers has a unique index on (channel, external_id), which MongoDB uses to find
    one; FerretDB v1 finds by `_id` only and read every customer instead, at every step
    of a dialogue before consent (the dialogue knows its customer's id only after).
    With 600 customers that search was the slowest command of a Telegram update
    (docs/performance.md), and it grows with every customer.

    Customers stored before the keys existed get theirs at start-up (`backfill`);
    until this process has seen them all keyed, a missing key still means a search.
    """

    collection_name = "customer_keys"
    model = CustomerKey
    BACKFILLED = "backfilled"  # a marker's id: a hash is 64 hex digits, never this

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.complete = False  # every customer has a key (the backfill was done)

    async def customer_id(self, channel: Channel, external_id: str) -> str | None:
        doc = await self.collection.find_one({"_id": _key(channel, external_id)})
        return None if doc is None else str(doc["customer_id"])

    async def add(self, customer: Customer) -> None:
        key = CustomerKey(id=_key(customer.channel, customer.external_id), customer_id=customer.id)
        await self._put(self._dump(key))

    async def forget(self, customer: Customer) -> None:
        """Delete the customer's key, unless it names a newer customer of the identity
        (made meanwhile by a first message after the erasure began)."""
        await self.collection.delete_one(
            {"_id": _key(customer.channel, customer.external_id), "customer_id": customer.id}
        )

    async def backfill(self, customers: CustomerRepository) -> int:
        """Give every customer stored before the keys existed their key, once."""
        if await self.collection.find_one({"_id": self.BACKFILLED}) is not None:
            self.complete = True
            return 0
        added, after = 0, None
        while page := await customers.page(after, BACKFILL_PAGE):
            keys = [{"_id": _key(c.channel, c.external_id), "customer_id": c.id} for c in page]
            try:
                added += len((await self.collection.insert_many(keys, ordered=False)).inserted_ids)
            except BulkWriteError as exc:  # keyed already (by get_or_create meanwhile)
                if any(e["code"] != DUPLICATE_KEY for e in exc.details["writeErrors"]):
                    raise
                added += exc.details["nInserted"]
            after = page[-1].id
        await self._put({"_id": self.BACKFILLED, "customer_id": ""})
        self.complete = True
        return added


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
        keys: CustomerKeyRepository,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sequences = sequences
        self.consent_states = consent_states
        self.keys = keys

    async def get_or_create(self, channel: Channel, external_id: str, locale: str) -> Customer:
        """One record per channel identity, even when two first messages race."""
        existing = await self.find(channel, external_id)
        if existing is not None:
            return existing
        fresh = Customer(channel=channel, external_id=external_id, locale=locale)
        inserted = await self._insert_unique(
            fresh, {"channel": channel, "external_id": external_id}
        )
        # Keyed after the record exists, also when it was there already: a process that
        # died between the two writes left a customer without a key.
        await self.keys.add(inserted.item)
        if inserted.created:  # their counters start empty, found by `_id` from now on
            await self.sequences.begin(inserted.item.id)
            await self.consent_states.begin(inserted.item.id)
        return inserted.item

    async def find(self, channel: Channel, external_id: str) -> Customer | None:
        """The customer of a channel identity: by its key, else (keys not all made yet)
        by a search."""
        customer_id = await self.keys.customer_id(channel, external_id)
        if customer_id is not None:
            doc = await self.collection.find_one({"_id": customer_id})
            if doc is not None:
                return self._load(doc)
        if self.keys.complete:
            return None  # (a key left by an erasure that stopped half-way: no customer)
        doc = await self.collection.find_one({"channel": channel, "external_id": external_id})
        return None if doc is None else self._load(doc)

    async def page(self, after_id: str | None, limit: int) -> list[Customer]:
        """Every customer, in `_id` order, `limit` at a time from after `after_id`."""
        query = {} if after_id is None else {"_id": {"$gt": after_id}}
        cursor = self.collection.find(query).sort("_id", ASCENDING).limit(limit)
        return [self._load(doc) async for doc in cursor]

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

    async def kept(self, customer_id: str) -> bool:
        """Whether the customer is here and no erasure of theirs has begun (one read by
        `_id`)."""
        doc = await self.collection.find_one({"_id": customer_id}, projection={"erasing_since": 1})
        return doc is not None and doc.get("erasing_since") is None

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

    async def delete(self, customer: Customer) -> bool:
        # The key first: if the process dies in between, the customer is still there to
        # be erased again, and no key is left pointing at nobody.
        await self.keys.forget(customer)
        result = await self.collection.delete_one({"_id": customer.id})
        return result.deleted_count == 1
