from __future__ import annotations

import contextlib
import enum
from datetime import datetime, timedelta

from pydantic import Field
from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from bot.domain.models import Model, new_id, utcnow
from bot.storage.database import Doc, Repository


class InboundEvent(Model):
    """An inbound event that was handled, or is being handled: its channel key is the
    idempotency key."""

    id: str = Field(alias="_id")  # e.g. "telegram:<bot id>:<update id>"
    at: datetime = Field(default_factory=utcnow)
    # Being handled until then by `owner` (random, one per claim); None: handled.
    until: datetime | None = None
    owner: str | None = None


class Claim(enum.Enum):
    MINE = "mine"  # handle it, then call done (or give_up)
    HANDLED = "handled"  # handled before: a redelivery
    BUSY = "busy"  # being handled right now, elsewhere


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

    async def claim(self, key: str, ttl: timedelta, *, now: datetime | None = None) -> Claim:
        """Claim the event `key` for handling, for `ttl`.

        The insert decides between deliveries that arrive at once. A claim whose holder
        died (past `ttl`) is taken over through a second unique insert, named after the
        dead holder's claim, so that of several deliveries arriving then only one takes
        it. Handling twice would still store nothing twice (every handler is idempotent
        per key); the claim spares the work and a second answer to the customer.
        """
        now = now or utcnow()
        mine = InboundEvent(id=key, at=now, until=now + ttl, owner=new_id())
        try:
            await self.collection.insert_one(self._dump(mine))
        except DuplicateKeyError:
            pass
        else:
            return Claim.MINE
        held = await self.collection.find_one({"_id": key})
        if held is None or held.get("until") is None:
            return Claim.HANDLED  # (None: handled so long ago that retention removed it)
        if held["until"] > now:
            return Claim.BUSY
        try:  # the holder died: one of us takes it over
            await self.collection.insert_one({"_id": f"{key}~{held.get('owner')}", "at": now})
        except DuplicateKeyError:
            return Claim.BUSY
        await self.collection.replace_one({"_id": key}, self._dump(mine))
        return Claim.MINE

    async def done(self, key: str, *, at: datetime | None = None) -> None:
        """The event was handled: a redelivery from now on is only acknowledged."""
        await self.collection.replace_one(
            {"_id": key}, self._dump(InboundEvent(id=key, at=at or utcnow())), upsert=True
        )

    async def give_up(self, key: str) -> None:
        """Handling failed: a redelivery may try again at once."""
        await self.collection.delete_one({"_id": key})

    async def seen(self, key: str) -> bool:
        """Whether the event was handled (not merely claimed)."""
        doc: Doc | None = await self.collection.find_one({"_id": key}, projection={"until": 1})
        return doc is not None and doc.get("until") is None

    async def mark(self, key: str, at: datetime | None = None) -> bool:
        """Record the event as handled; False if it already was (or is being handled)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.collection.insert_one(self._dump(InboundEvent(id=key, at=at or utcnow())))
            return True
        return False
