from __future__ import annotations

from pymongo import ASCENDING, IndexModel

from bot.domain.models import Staff
from bot.storage.database import Inserted, Repository


class StaffRepository(Repository[Staff]):
    collection_name = "staff"
    model = Staff
    indexes = (IndexModel([("username", ASCENDING)], unique=True),)

    async def add(self, staff: Staff) -> Inserted[Staff]:
        return await self._insert_unique(staff, {"username": staff.username})

    async def by_username(self, username: str) -> Staff | None:
        doc = await self.collection.find_one({"username": username})
        return None if doc is None else self._load(doc)
