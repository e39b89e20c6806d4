from __future__ import annotations

from datetime import timedelta

from bot.domain.models import Conversation, utcnow
from bot.storage.database import Doc, Repository
from bot.storage.locks import LockRepository


class ConcurrentUpdate(RuntimeError):
    """Another event changed the same dialogue first; reload and apply again."""


class ConversationRepository(Repository[Conversation]):
    """Dialogue state, one document per customer identity, versioned."""

    collection_name = "conversations"
    model = Conversation

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
