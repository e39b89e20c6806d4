from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from bot.domain.models import ConsentPurpose, ConsentRecord
from bot.storage.database import LocalLocks, Repository


def record_id(customer_id: str, seq: int) -> str:
    """A ledger record's `_id`: whether number `seq` exists is one look-up by `_id`."""
    return f"{customer_id}:{seq}"


class ConsentState(BaseModel):
    customer_id: str = Field(alias="_id")
    seq: int  # the newest ledger record it includes
    records: dict[str, dict[str, Any]]  # purpose -> that purpose's newest record


class ConsentStateRepository(Repository[ConsentState]):
    """The consents in force per customer: the ledger read once instead of at every step.

    The ledger stays the record. A state is used only when the ledger has no record
    after its `seq` (numbers are dense, and a record's `_id` names its number), so a
    state that missed a record (its writer died) is rebuilt, never believed.
    """

    collection_name = "consent_state"
    model = ConsentState

    async def begin(self, customer_id: str) -> None:
        """A new customer's state: none given yet (so their first answer needs no search)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.collection.insert_one({"_id": customer_id, "seq": 0, "records": {}})


APPEND_TRIES = 50  # numbers taken by writers in other processes at the same moment


class ConsentRepository(Repository[ConsentRecord]):
    """The append-only consent ledger: records are inserted, never updated."""

    collection_name = "consents"
    model = ConsentRecord
    indexes = (IndexModel([("customer_id", ASCENDING), ("seq", ASCENDING)], unique=True),)

    def __init__(self, *args: object, states: ConsentStateRepository, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.states = states
        self._writers = LocalLocks()

    async def append(self, record: ConsentRecord) -> ConsentRecord:
        """Add a record, numbered after the customer's last; the state in force follows.

        The record's `_id` is (customer, number), so of two writers that take the same
        number one is refused, rebuilds from the ledger and takes the next. The state is
        written after the record and is complete up to its own number; if two writers in
        different processes leave it behind the ledger (FerretDB's writes to one document
        are not atomic), the next read sees a record past it and rebuilds (`_state`).
        So no lock between processes: it cost three commands, two of them reads of the
        whole locks collection on FerretDB. In one process, one writer per customer.
        """
        async with self._writers.hold(record.customer_id):
            state = await self._state(record.customer_id)
            for attempt in range(1, APPEND_TRIES + 1):
                seq = state.seq + 1
                stored = record.model_copy(
                    update={"id": record_id(record.customer_id, seq), "seq": seq}
                )
                try:
                    await self.collection.insert_one(self._dump(stored))
                    break
                except DuplicateKeyError:  # the state was behind: the ledger decides
                    if attempt == APPEND_TRIES:
                        raise
                    # Another process took the number: let it go on before trying again.
                    await asyncio.sleep(random.uniform(0, 0.005 * attempt))  # noqa: S311
                    state = await self._rebuild(record.customer_id)
            records = {**state.records, stored.purpose.value: self._dump(stored)}
            await self._save(ConsentState(_id=record.customer_id, seq=seq, records=records))
        return stored

    async def history(self, customer_id: str) -> list[ConsentRecord]:
        cursor = self.collection.find({"customer_id": customer_id}).sort("seq", ASCENDING)
        return [self._load(doc) async for doc in cursor]

    async def last_at(self, customer_id: str) -> datetime | None:
        """When the customer last gave or withdrew a consent (retention: activity)."""
        doc = await self.collection.find_one(
            {"customer_id": customer_id}, sort=[("seq", DESCENDING)], projection={"at": 1}
        )
        return None if doc is None else doc["at"]

    async def delete_for_customer(self, customer_id: str) -> int:
        deleted = (await self.collection.delete_many({"customer_id": customer_id})).deleted_count
        await self.states.collection.delete_one({"_id": customer_id})
        return deleted

    async def current(self, customer_id: str) -> dict[ConsentPurpose, ConsentRecord]:
        """The state in force: the latest record per purpose."""
        state = await self._state(customer_id)
        return {ConsentPurpose(purpose): self._load(doc) for purpose, doc in state.records.items()}

    async def _state(self, customer_id: str) -> ConsentState:
        doc = await self.states.collection.find_one({"_id": customer_id})
        if doc is not None:
            state = ConsentState.model_validate(doc)
            after = await self.collection.find_one(
                {"_id": record_id(customer_id, state.seq + 1)}, projection={"_id": 1}
            )
            if after is None:
                return state
        return await self._rebuild(customer_id)  # none yet, or behind the ledger

    async def _rebuild(self, customer_id: str) -> ConsentState:
        records: dict[str, dict[str, Any]] = {}
        seq = 0
        for record in await self.history(customer_id):
            records[record.purpose.value] = self._dump(record)
            seq = record.seq
        state = ConsentState(_id=customer_id, seq=seq, records=records)
        if records:
            await self._save(state)
        return state

    async def _save(self, state: ConsentState) -> None:
        await self._put(state.model_dump(by_alias=True), self.states.collection)
