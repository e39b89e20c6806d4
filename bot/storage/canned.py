"""Canned replies: ready answers staff start a reply from, one language each."""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

from bot.domain.models import utcnow
from bot.domain.tickets import CannedReply
from bot.storage.database import Repository


class CannedReplyRepository(Repository[CannedReply]):
    collection_name = "canned_replies"
    model = CannedReply
    indexes = (IndexModel([("locale", ASCENDING), ("title", ASCENDING)]),)

    async def add(self, reply: CannedReply) -> CannedReply:
        return await self.insert(reply)

    async def all(self, locale: str | None = None, limit: int = 500) -> list[CannedReply]:
        query = {} if locale is None else {"locale": locale}
        cursor = self.collection.find(query).sort([("locale", ASCENDING), ("title", ASCENDING)])
        return [self._load(doc) async for doc in cursor.limit(limit)]

    async def update(self, reply_id: str, *, title: str, text: str, locale: str) -> bool:
        result = await self.collection.update_one(
            {"_id": reply_id},
            {"$set": {"title": title, "text": text, "locale": locale, "updated_at": utcnow()}},
        )
        return result.matched_count == 1

    async def delete(self, reply_id: str) -> bool:
        result = await self.collection.delete_one({"_id": reply_id})
        return result.deleted_count == 1
