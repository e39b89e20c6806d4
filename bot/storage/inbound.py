from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import Field
from pymongo import ASCENDING, IndexModel

from bot.domain.models import Model, new_id, utcnow
from bot.storage.database import Doc, Repository
from bot.storage.locks import Claim, claim_once

# A claim is ended by its holder only this long before it could be taken over (at most a
# third of its length).
MARGIN = timedelta(seconds=15)


class InboundEvent(Model):
    """An inbound event that was handled, or is being handled: its channel key is the
    idempotency key."""

    id: str = Field(alias="_id")  # e.g. "telegram:<bot id>:<update id>"
    at: datetime = Field(default_factory=utcnow)
    # Being handled until then by `owner` (random, one per claim); None: handled.
    until: datetime | None = None
    owner: str | None = None


class InboundEventRepository(Repository[InboundEvent]):
    """Which channel events were handled, so a re-delivery is handled at most once.

    The key is the document's `_id`, unique by nature on every server; no other field
    is ever searched, so a claim costs one insert and its end one replace, whatever the
    size of the collection. (It was a lock by name, a look-up and a record: five
    commands, two of which read the whole locks collection on FerretDB.)
    """

    collection_name = "inbound_events"
    model = InboundEvent
    indexes = (IndexModel([("at", ASCENDING)]),)  # retention removes old keys

    async def claim(
        self, key: str, ttl: timedelta, *, now: datetime | None = None, owner: str | None = None
    ) -> Claim:
        """Claim the event `key` for handling, for `ttl` (bot.storage.locks.claim_once:
        DONE means handled). A holder that died is taken over after `ttl`. Handling twice
        would still store nothing twice (every handler is idempotent per key); the claim
        spares the work and a second answer to the customer. A caller claiming again
        after a failure passes the same `owner`, so a claim whose insert reached the
        server before the failure is known as its own (not waited on until it runs out).
        Its holder keeps it the same way, claiming again before `ttl` passes.
        """
        now = now or utcnow()
        mine = InboundEvent(id=key, at=now, until=now + ttl, owner=owner or new_id())
        return await claim_once(self.collection, self._dump(mine), now)

    async def done(self, key: str, *, at: datetime | None = None) -> None:
        """The event was handled: a redelivery from now on is only acknowledged."""
        await self._put(self._dump(InboundEvent(id=key, at=at or utcnow())))

    async def give_up(
        self, key: str, owner: str, *, now: datetime | None = None, margin: timedelta = MARGIN
    ) -> bool:
        """Handling failed: a redelivery may try again at once. Only the claim's `owner`
        ends it, and only while it is surely still theirs: more than `margin` (at most a
        third of the claim's length) before its `until`, after which another may take it
        over. The margin covers the delete's wait for its turn at the WriteGate (5 s at
        most) and its round trip. Otherwise the claim is left to run out. Whether it was
        ended."""
        doc: Doc | None = await self.collection.find_one({"_id": key})
        if doc is None or doc.get("owner") != owner or doc.get("until") is None:
            return False
        now = now or utcnow()  # after the read: the time left is what the delete has
        margin = min(margin, (doc["until"] - doc["at"]) / 3)
        if doc["until"] <= now + margin:
            return False
        # By `_id` alone: a filter on the owner too is a scan of the collection on FerretDB.
        await self.collection.delete_one({"_id": key})
        return True

    async def seen(self, key: str) -> bool:
        """Whether the event was handled (not merely claimed)."""
        doc: Doc | None = await self.collection.find_one({"_id": key}, projection={"until": 1})
        return doc is not None and doc.get("until") is None
