from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from pymongo import ASCENDING, IndexModel

from bot.domain.models import Conversation, utcnow
from bot.storage.database import Doc, Repository
from bot.storage.locks import LockRepository

# A writer's claim on the next version of a dialogue: far longer than a write takes.
CLAIM_TTL = timedelta(seconds=30)
# A claim is dropped unwritten only this long before it could be taken over.
CLAIM_MARGIN = timedelta(seconds=10)


class ConcurrentUpdate(RuntimeError):
    """Another event changed the same dialogue first; reload and apply again."""


class ConversationRepository(Repository[Conversation]):
    """Dialogue state, one document per customer identity, versioned."""

    collection_name = "conversations"
    model = Conversation
    indexes = (IndexModel([("updated_at", ASCENDING)]),)  # retention of idle drafts

    def __init__(self, *args: object, locks: LockRepository, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.locks = locks

    async def save(self, conversation: Conversation) -> Conversation:
        """Compare-and-set on `version`: a writer holding a stale copy gets ConcurrentUpdate.

        The writer of version n+1 first claims `<id>@<n+1>` (LockRepository.claim, by
        `_id` only), then checks that n is still stored, then writes. Of two writers
        holding version n, one gets the claim; the other is refused. A stale writer
        (holding n while n+1 is stored) gets the claim, which was dropped when n+1 was
        written, and is refused by the check. A writer too slow to write well within its
        claim's time is refused too. (It was a lock by name: five commands, two of them
        reads of the whole locks collection on FerretDB; now four, by `_id`.)
        """
        expected = conversation.version
        updated = conversation.model_copy(update={"version": expected + 1, "updated_at": utcnow()})
        async with self._version_claim(conversation.id, expected) as claimed:
            if not claimed:
                raise ConcurrentUpdate(conversation.id)
            # By `_id` alone: FerretDB reads the whole collection for a filter with any
            # other field (a condition on the version here cost more than half of the
            # updates/s). The claim and the check in _version_claim make it safe.
            await self.collection.replace_one(
                {"_id": conversation.id}, self._dump(updated), upsert=True
            )
        return updated

    @asynccontextmanager
    async def _version_claim(self, conversation_id: str, expected: int) -> AsyncIterator[bool]:
        """Whether this caller may write the version after `expected`: it holds the claim
        to it, with time left, and `expected` is the version stored. The claim is dropped
        after: once that version is written (a later claimant finds a newer version
        stored), or when nothing was written while it is surely still ours (within its
        `until`, before anyone could take it over); else it runs out."""
        key = f"conversation:{conversation_id}@{expected + 1}"
        until = await self.locks.claim(key, f"conversation:{conversation_id}", CLAIM_TTL)
        if until is None:
            yield False
            return
        wrote = False
        try:
            stored: Doc | None = await self.collection.find_one(
                {"_id": conversation_id}, projection={"version": 1}
            )
            if (0 if stored is None else int(stored["version"])) != expected:
                yield False
                return
            if utcnow() >= until - CLAIM_MARGIN:
                yield False  # too slow: the claim could be taken over before we write
                return
            yield True
            wrote = True
        finally:
            if wrote or utcnow() < until - CLAIM_MARGIN:
                await self.locks.drop_claim(key)

    async def delete(self, conversation_id: str) -> None:
        await self.collection.delete_one({"_id": conversation_id})

    async def delete_for_customer(self, customer_id: str) -> int:
        return (await self.collection.delete_many({"customer_id": customer_id})).deleted_count

    # Retention (C4.3)

    async def idle(self, before: datetime, limit: int | None = None) -> list[str]:
        """Ids of dialogues untouched since before `before`, the longest idle first."""
        cursor = self.collection.find({"updated_at": {"$lt": before}}, projection={"_id": 1}).sort(
            "updated_at", ASCENDING
        )
        if limit is not None:
            cursor = cursor.limit(limit)
        return [str(doc["_id"]) async for doc in cursor]

    async def delete_if_idle(self, conversation_id: str, before: datetime) -> bool:
        """Delete the dialogue if it is still untouched since before `before`.

        As a write of its next version (save's claim), so a customer's step that comes in
        now either lands first (and the dialogue is no longer idle) or finds it gone and
        starts afresh.
        """
        doc: Doc | None = await self.collection.find_one(
            {"_id": conversation_id}, projection={"version": 1, "updated_at": 1}
        )
        if doc is None or doc["updated_at"] >= before:
            return False
        async with self._version_claim(conversation_id, int(doc["version"])) as claimed:
            if not claimed:
                return False  # someone is writing it right now: not idle
            result = await self.collection.delete_one(
                {"_id": conversation_id, "version": doc["version"]}
            )
        return result.deleted_count == 1

    async def file_refs_in_use(self, refs: list[str], *, besides: Collection[str] = ()) -> set[str]:
        """Which of `refs` a draft's attachments point to (drafts in `besides` aside)."""
        cursor = self.collection.find(
            {"answers.attachments.file_ref": {"$in": refs}}, projection={"answers": 1}
        )
        wanted = set(refs)
        return {
            str(a["file_ref"])
            async for doc in cursor
            if doc["_id"] not in besides
            for a in (doc.get("answers") or {}).get("attachments", [])
            if isinstance(a, dict) and a.get("file_ref") in wanted
        }
