"""What the staff group's forum topics are owed (bot.channels.telegram.staff).

Posting to the staff group used to happen inside the change that caused it: a customer's
words waited for the group's rate limit (20 posts a minute) before they were answered,
and a post that failed (a 429, a network error, the process stopping) was lost for good.
Now each change leaves an entry here, and the staff topics' worker posts them, in order
per ticket, retrying what fails.

An entry names what to post by id (the ticket, a message, a correction's place), never
its words: they are read when it is posted, so an erasure leaves nothing here to find.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field
from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from bot.domain.models import Model
from bot.storage.database import Repository

StaffPostKind = Literal["filed", "customer", "staff", "correction"]


class StaffPost(Model):
    id: str = Field(alias="_id")  # kind and ref: one entry per thing to post
    ticket_id: str
    kind: StaffPostKind
    ref: str = ""  # the message's id, or the correction's place among the ticket's
    at: datetime  # when it was owed: a ticket's posts go in this order
    next_attempt_at: datetime
    attempts: int = 0

    @staticmethod
    def key(kind: StaffPostKind, ticket_id: str, ref: str = "") -> str:
        return f"{kind}:{ticket_id}:{ref}"


class StaffPostRepository(Repository[StaffPost]):
    collection_name = "staff_posts"
    model = StaffPost
    indexes = (IndexModel([("at", ASCENDING)]),)

    async def add(
        self, kind: StaffPostKind, ticket_id: str, *, at: datetime, ref: str = ""
    ) -> bool:
        """Owe a post (once: the same change told again adds nothing); False: owed already."""
        post = StaffPost(
            id=StaffPost.key(kind, ticket_id, ref),
            ticket_id=ticket_id,
            kind=kind,
            ref=ref,
            at=at,
            next_attempt_at=at,
        )
        try:
            await self.collection.insert_one(self._dump(post))
        except DuplicateKeyError:
            return False
        return True

    async def oldest(self, limit: int) -> list[StaffPost]:
        """The posts owed, oldest first, due or not: one waiting for its retry holds up its
        ticket's later ones. A small collection: only what is not posted yet."""
        cursor = self.collection.find({}).sort("at", ASCENDING).limit(limit)
        return [self._load(doc) async for doc in cursor]

    async def owed(self, kind: StaffPostKind, ticket_id: str, ref: str = "") -> bool:
        doc = await self.collection.find_one(
            {"_id": StaffPost.key(kind, ticket_id, ref)}, projection={"_id": 1}
        )
        return doc is not None

    async def retry(self, post_id: str, *, at: datetime, attempts: int) -> None:
        await self.collection.update_one(
            {"_id": post_id}, {"$set": {"next_attempt_at": at, "attempts": attempts}}
        )

    async def done(self, post_id: str) -> None:
        await self.collection.delete_one({"_id": post_id})
