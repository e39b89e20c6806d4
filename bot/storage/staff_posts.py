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
    # A post is several Bot API calls (a card, then its files): how many went out, so
    # that a retry sends the rest. And the topic a "filed" post made, before the ticket
    # records it: a retry uses it, and an erasure meanwhile deletes it.
    parts: int = 0
    topic_id: int | None = None

    @staticmethod
    def key(kind: StaffPostKind, ticket_id: str, ref: str = "") -> str:
        return f"{kind}:{ticket_id}:{ref}"


class StaffPostRepository(Repository[StaffPost]):
    collection_name = "staff_posts"
    model = StaffPost
    indexes = (
        IndexModel([("next_attempt_at", ASCENDING)]),
        IndexModel([("ticket_id", ASCENDING), ("at", ASCENDING)]),
    )

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

    async def due(
        self, now: datetime, limit: int, *, skip: set[str] | None = None
    ) -> list[StaffPost]:
        """Posts due now, oldest first, but those of the tickets in `skip` (a small
        collection: what is not posted yet)."""
        query: dict[str, object] = {"next_attempt_at": {"$lte": now}}
        if skip:
            query["ticket_id"] = {"$nin": sorted(skip)}
        cursor = self.collection.find(query).sort("at", ASCENDING).limit(limit)
        return [self._load(doc) async for doc in cursor]

    async def head(self, ticket_id: str) -> StaffPost | None:
        """The ticket's next post: its topic first (the others go into it), then the
        oldest, due or not (one waiting for its retry holds up the later ones)."""
        doc = await self.collection.find_one({"_id": StaffPost.key("filed", ticket_id)})
        if doc is None:
            doc = await self.collection.find_one({"ticket_id": ticket_id}, sort=[("at", ASCENDING)])
        return None if doc is None else self._load(doc)

    async def progress(self, post_id: str, *, parts: int, topic_id: int | None = None) -> None:
        fields: dict[str, object] = {"parts": parts}
        if topic_id is not None:
            fields["topic_id"] = topic_id
        await self.collection.update_one({"_id": post_id}, {"$set": fields})

    async def retry(self, post_id: str, *, at: datetime, attempts: int) -> None:
        await self.collection.update_one(
            {"_id": post_id}, {"$set": {"next_attempt_at": at, "attempts": attempts}}
        )

    async def done(self, post_id: str) -> None:
        await self.collection.delete_one({"_id": post_id})
