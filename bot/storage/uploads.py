"""Files customers upload from the widget, and the one-time tokens that allow an upload."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from pydantic import Field
from pymongo import ASCENDING, IndexModel

from bot.domain.models import Model, new_id, personal, utcnow
from bot.storage.database import Repository


def _digest(token: str) -> str:
    # Only a hash is stored: a database reader cannot use a token.
    return hashlib.sha256(token.encode()).hexdigest()


class UploadToken(Model):
    id: str = Field(alias="_id")  # sha256 of the token
    owner: str  # the conversation key (hashed) the upload will belong to
    expires_at: datetime


class Upload(Model):
    id: str = Field(default_factory=new_id, alias="_id")
    owner: str  # the conversation key (hashed) of the customer who uploaded it
    name: str = personal()
    mime_type: str
    size: int
    sha256: str
    content: bytes = personal(repr=False)
    created_at: datetime = Field(default_factory=utcnow)


class UploadTokenRepository(Repository[UploadToken]):
    collection_name = "upload_tokens"
    model = UploadToken
    indexes = (IndexModel([("expires_at", ASCENDING)]),)

    async def issue(self, owner: str, ttl: timedelta, now: datetime | None = None) -> str:
        token = secrets.token_urlsafe(32)
        expires = (now or utcnow()) + ttl
        await self.insert(UploadToken(id=_digest(token), owner=owner, expires_at=expires))
        return token

    async def redeem(self, token: str, now: datetime | None = None) -> UploadToken | None:
        """The token's grant, once: a second redemption or an expired token gets None."""
        key = {"_id": _digest(token)}
        doc = await self.collection.find_one(key)
        if doc is None:
            return None
        # Whoever deletes it owns it: a delete is one statement, also on FerretDB.
        if (await self.collection.delete_one(key)).deleted_count != 1:
            return None
        grant = self._load(doc)
        return grant if grant.expires_at > (now or utcnow()) else None

    async def delete_owned(self, owner: str) -> int:
        return (await self.collection.delete_many({"owner": owner})).deleted_count

    async def count_expired(self, now: datetime) -> int:
        return await self.collection.count_documents({"expires_at": {"$lte": now}})

    async def purge_expired(self, now: datetime | None = None) -> int:
        result = await self.collection.delete_many({"expires_at": {"$lte": now or utcnow()}})
        return result.deleted_count


class UploadRepository(Repository[Upload]):
    collection_name = "uploads"
    model = Upload
    indexes = (IndexModel([("owner", ASCENDING), ("created_at", ASCENDING)]),)

    async def count_since(self, owner: str, since: datetime) -> int:
        return await self.collection.count_documents(
            {"owner": owner, "created_at": {"$gte": since}}
        )

    async def list_owned(self, owner: str) -> list[Upload]:
        """The owner's uploads without their content (for an export's references)."""
        cursor = self.collection.find({"owner": owner}, projection={"content": 0})
        return [self._load({**doc, "content": b""}) async for doc in cursor]

    async def delete_owned(self, owner: str) -> int:
        return (await self.collection.delete_many({"owner": owner})).deleted_count

    async def delete_ids(self, upload_ids: list[str]) -> int:
        if not upload_ids:
            return 0
        result = await self.collection.delete_many({"_id": {"$in": upload_ids}})
        return result.deleted_count

    async def created_before(
        self, before: datetime, *, after_id: str | None = None, limit: int | None = None
    ) -> list[str]:
        """Ids of uploads older than `before`, in id order from `after_id` (retention walks
        them a page at a time)."""
        query: dict[str, object] = {"created_at": {"$lt": before}}
        if after_id is not None:
            query["_id"] = {"$gt": after_id}
        cursor = self.collection.find(query, projection={"_id": 1}).sort("_id", ASCENDING)
        if limit is not None:
            cursor = cursor.limit(limit)
        return [str(doc["_id"]) async for doc in cursor]

    async def delete_created_before(self, upload_ids: list[str], before: datetime) -> int:
        if not upload_ids:
            return 0
        result = await self.collection.delete_many(
            {"_id": {"$in": upload_ids}, "created_at": {"$lt": before}}
        )
        return result.deleted_count

    async def owned(self, upload_id: str, owner: str) -> Upload | None:
        """The upload, if it belongs to `owner` (an id alone never reveals a stranger's file)."""
        doc = await self.collection.find_one({"_id": upload_id, "owner": owner})
        return None if doc is None else self._load(doc)
