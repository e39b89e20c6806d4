from __future__ import annotations

from datetime import date

from pydantic import Field
from pymongo import ASCENDING, IndexModel

from bot.domain.models import Channel, Model, new_id
from bot.storage.database import Repository


class ConsentRefusal(Model):
    """An anonymous count of one declined privacy notice: a day and a channel, nothing else."""

    id: str = Field(default_factory=new_id, alias="_id")
    day: date
    channel: Channel


class RefusalRepository(Repository[ConsentRefusal]):
    """One insert per refusal (inserts are exact where a shared $inc counter is not)."""

    collection_name = "consent_refusals"
    model = ConsentRefusal
    indexes = (IndexModel([("day", ASCENDING)]),)

    def _dump(self, item: ConsentRefusal) -> dict[str, object]:
        doc = super()._dump(item)
        doc["day"] = item.day.isoformat()  # BSON has no date-only type
        return doc

    async def record(self, day: date, channel: Channel) -> None:
        await self.insert(ConsentRefusal(day=day, channel=channel))

    async def count(self, day: date) -> int:
        return await self.collection.count_documents({"day": day.isoformat()})
