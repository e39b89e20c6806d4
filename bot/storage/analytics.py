"""The analytics store (C3.1.1, C3.2.4): one anonymous fact per ticket, and its counts.

Days are stored as ISO strings ("2026-03-02"): BSON has no date-only type, and ISO
strings compare in date order. The counts use only `$match` and `$group` with
`{"$sum": 1}`: FerretDB v1 has no other accumulators, and here `{"$sum": "$field"}`
answered 0 (measured on v1.24), so sums of values are made from counts per value.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pymongo import ASCENDING, IndexModel

from bot.domain.analytics import AnalyticsFact
from bot.storage.database import Doc, Repository
from bot.storage.refusals import RefusalRepository

DAY_FIELDS = ("day", "response_due_day", "first_response_day", "closed_day")


def _iso(value: date) -> str:
    return value.isoformat()


class AnalyticsRepository(Repository[AnalyticsFact]):
    collection_name = "analytics"
    model = AnalyticsFact
    indexes = (
        IndexModel([("day", ASCENDING)]),
        IndexModel([("open", ASCENDING), ("day", ASCENDING)]),
    )

    def _dump(self, item: AnalyticsFact) -> Doc:
        doc = super()._dump(item)
        for name in DAY_FIELDS:
            if doc[name] is not None:
                doc[name] = _iso(doc[name])
        return doc

    async def put(self, fact: AnalyticsFact) -> None:
        """Store the ticket's fact, replacing what was there (a whole new projection)."""
        await self.collection.replace_one({"_id": fact.id}, self._dump(fact), upsert=True)

    async def delete(self, fact_id: str) -> None:
        """A fact whose ticket was never filed after all (see TicketService.file)."""
        await self.collection.delete_one({"_id": fact_id})

    async def forget_text(self, fact_id: str) -> None:
        await self.collection.update_one({"_id": fact_id}, {"$set": {"text": None}})

    async def ids_with_text(self) -> list[str]:
        cursor = self.collection.find({"text": {"$ne": None}}, projection={"_id": 1})
        return [str(doc["_id"]) async for doc in cursor]

    # ------------------------------------------------------------ counts

    async def _group(self, match: Doc, *keys: str) -> list[tuple[tuple[Any, ...], int]]:
        """(values of `keys`, count) for the facts matching `match`."""
        group_id = {key: f"${key}" for key in keys}
        pipeline = [{"$match": match}, {"$group": {"_id": group_id, "n": {"$sum": 1}}}]
        cursor = await self.collection.aggregate(pipeline)
        return [(tuple(row["_id"].get(key) for key in keys), int(row["n"])) async for row in cursor]

    @staticmethod
    def _filed(start: date, end: date, **more: Any) -> Doc:
        return {"day": {"$gte": _iso(start), "$lte": _iso(end)}, **more}

    async def filed_by(self, start: date, end: date, key: str) -> list[tuple[str, str, int]]:
        """(day, value of `key`, count) of tickets filed in [start, end]."""
        rows = await self._group(self._filed(start, end), "day", key)
        return [(str(day), str(value), n) for (day, value), n in rows]

    async def ratings(self, start: date, end: date) -> dict[int, int]:
        rows = await self._group(self._filed(start, end), "rating")
        counts: dict[int, int] = {}
        for (rating,), n in rows:
            if isinstance(rating, int) and not isinstance(rating, bool):
                counts[rating] = counts.get(rating, 0) + n
        return counts

    async def first_responses(self, start: date, end: date, today: date) -> tuple[int, int]:
        """(on time, late) among tickets filed in [start, end] (C3.1.3).

        Late also counts an open ticket still without a first response whose due day is
        over; a fact is re-projected only when its ticket changes, so that is decided
        here, with today's date, not at projection time.
        """
        on_time = await self.collection.count_documents(self._filed(start, end, on_time=True))
        late = await self.collection.count_documents(self._filed(start, end, on_time=False))
        overdue = await self.collection.count_documents(
            self._filed(
                start,
                end,
                on_time=None,
                open=True,
                response_due_day={"$lt": _iso(today)},
            )
        )
        return on_time, late + overdue

    async def suggestions(self, start: date, end: date) -> dict[str, int]:
        rows = await self._group(self._filed(start, end, suggestion={"$ne": None}), "suggestion")
        return {str(value): n for (value,), n in rows}

    async def open_by_day(self) -> list[tuple[str, int]]:
        """(filing day, count) of the tickets open now, for the backlog by age."""
        rows = await self._group({"open": True}, "day")
        return [(str(day), n) for (day,), n in rows]

    async def refusals_by_day(self, start: date, end: date) -> list[tuple[str, int]]:
        """(day, count) of anonymous declined privacy notices (their own collection,
        consent_refusals, which holds nothing but a day and a channel)."""
        refusals = self.collection.database[RefusalRepository.collection_name]
        pipeline: list[Doc] = [
            {"$match": {"day": {"$gte": _iso(start), "$lte": _iso(end)}}},
            {"$group": {"_id": "$day", "n": {"$sum": 1}}},
        ]
        cursor = await refusals.aggregate(pipeline)
        return [(str(row["_id"]), int(row["n"])) async for row in cursor]
