from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from pymongo import ASCENDING, IndexModel

from bot.domain.models import Conversation, utcnow
from bot.storage.database import Doc, Repository
from bot.storage.locks import LockRepository


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
        """Compare-and-set on `version`: a writer holding a stale copy gets ConcurrentUpdate."""
        expected = conversation.version
        updated = conversation.model_copy(update={"version": expected + 1, "updated_at": utcnow()})
        lock = await self.locks.acquire(f"conversation:{conversation.id}", timedelta(seconds=30))
        if lock is None:
            raise ConcurrentUpdate(conversation.id)
        try:
            stored: Doc | None = await self.collection.find_one(
                {"_id": conversation.id}, projection={"version": 1}
            )
            if (0 if stored is None else int(stored["version"])) != expected:
                raise ConcurrentUpdate(conversation.id)
            await self.collection.replace_one(
                {"_id": conversation.id}, self._dump(updated), upsert=True
            )
        finally:
            await self.locks.release(lock)
        return updated

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

        Under the lock `save` takes, so a customer's step that comes in now either lands
        first (and the dialogue is no longer idle) or finds it gone and starts afresh.
        """
        lock = await self.locks.acquire(f"conversation:{conversation_id}", timedelta(seconds=30))
        if lock is None:
            return False  # someone is writing it right now: not idle
        try:
            result = await self.collection.delete_one(
                {"_id": conversation_id, "updated_at": {"$lt": before}}
            )
        finally:
            await self.locks.release(lock)
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
