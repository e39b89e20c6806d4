"""Short-lived locks built on the one write both servers make atomic: an insert
against a unique index.

FerretDB v1 carries out every update as a query followed by a separate write,
with no transaction around them: 50 concurrent `$inc`s on one document end at
1, and 20 concurrent `find_one_and_update` claims on 5 documents all "win"
(measured; see docs/storage.md). So nothing in this code relies on an update
being atomic. Where two writers must not interleave (a dialogue step, a ticket
change, sending an outbound message) they take a lock here first, then re-read
and check what they are about to change.

A lock is a document `{name, gen, owner, until}` whose `_id` is `name#gen`.
Acquiring inserts the next generation after the newest one if that one is gone
or expired; the unique `_id` lets exactly one contender win each generation.
A holder that dies is replaced once `until` passes: a lease, not a forever-lock.
A holder renews by inserting the next generation itself (`renew`), so renewing and
taking over an expired lock race on the same unique `_id` and exactly one wins.

Finding a lock's newest generation is a search by name, which FerretDB answers by
reading the whole collection. Where the thing to lock has a name of its own that is
never reused while it matters (one Telegram update, one version of a dialogue), a
claim does with `_id` alone (`claim_once`, `LockRepository.claim`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from bot.domain.models import Model, new_id, utcnow
from bot.storage.database import DatabaseUnavailable, Doc, DuplicateKeyError, Repository

log = logging.getLogger(__name__)


class Busy(RuntimeError):
    """Someone else holds the lock."""


class Claim(enum.Enum):
    MINE = "mine"  # this caller holds it now
    DONE = "done"  # held before, and marked done (`until` removed)
    BUSY = "busy"  # someone else holds it, or is taking it over


async def claim_once(
    collection: AsyncCollection[Doc], mine: Doc, now: datetime, *, tries: int = 3
) -> Claim:
    """Claim `mine["_id"]` with the document `mine` (its `until` and a random `owner`).
    A caller that tries again after a failure passes the same `owner`: if its first
    insert reached the server, the claim is its own. A holder keeps its claim by claiming
    again with its `owner` before its `until` passes: the `until` moves on.

    The insert decides between callers that arrive at once. A claim whose holder died
    (its `until` passed) is taken over through a claim on `<_id>~<dead owner>`, made by
    this same function: of several callers arriving then, exactly one gets it, and if
    that taker dies before it is done, its own claim on the marker runs out and is taken
    over in turn. The taker then writes its claim over the dead one, after checking that
    it is still the dead one. So two holders within their `until` do not hold one claim
    at once, with no update needing to be atomic. A holder that outlives its `until` may
    find it taken over, as with a lock.
    """
    started = asyncio.get_running_loop().time()
    for _ in range(tries):
        try:
            await collection.insert_one(mine)
        except DuplicateKeyError:
            pass
        else:
            return Claim.MINE
        held = await collection.find_one({"_id": mine["_id"]})
        if held is None:
            continue  # given up (deleted) between the two commands: try the insert again
        if held.get("until") is None:
            return Claim.DONE
        if held["until"] > now and held.get("owner") != mine["owner"]:
            return Claim.BUSY
        # `now` as it is after these round trips, which may have waited (the WriteGate).
        late = now + timedelta(seconds=asyncio.get_running_loop().time() - started)
        if held["until"] - late > (mine["until"] - now) / 4:
            # Our own, with time left: an insert whose answer was lost (a retried write),
            # or the holder claiming again to keep it. Nobody takes over a claim within
            # its `until`, so moving that on is safe.
            if held["until"] < mine["until"]:
                await collection.replace_one({"_id": mine["_id"]}, mine)
            return Claim.MINE
        # Run out, or our own near its end: another caller may be taking it over right
        # now, so it is taken (over) through the marker, where exactly one wins.
        dead = held.get("owner")
        marker = {**mine, "_id": f"{mine['_id']}~{dead}"}
        if await claim_once(collection, marker, now) is not Claim.MINE:
            return Claim.BUSY  # another caller is taking it over
        again = await collection.find_one({"_id": mine["_id"]}, projection={"owner": 1})
        if again is None:  # given up meanwhile: an insert decides again
            try:
                await collection.insert_one(mine)
            except DuplicateKeyError:
                return Claim.BUSY
            return Claim.MINE
        if again.get("owner") != dead:
            return Claim.BUSY  # given up and claimed afresh meanwhile
        await collection.replace_one({"_id": mine["_id"]}, mine)
        return Claim.MINE
    return Claim.BUSY  # claimed and given up again and again: look again later


class Lock(Model):
    id: str = Field(alias="_id")
    name: str
    gen: int
    owner: str
    until: datetime


class LockRepository(Repository[Lock]):
    collection_name = "locks"
    model = Lock
    indexes = (
        IndexModel([("name", ASCENDING), ("gen", DESCENDING)]),
        IndexModel([("until", ASCENDING)]),  # retention removes long-expired locks
    )

    async def acquire(
        self, name: str, ttl: timedelta, *, now: datetime | None = None, owner: str | None = None
    ) -> Lock | None:
        """Take the lock `name` for `ttl`, or None if a live holder has it."""
        now = now or utcnow()
        newest = await self.collection.find_one({"name": name}, sort=[("gen", DESCENDING)])
        if newest is not None and newest["until"] > now:
            return None
        gen = 0 if newest is None else int(newest["gen"]) + 1
        lock = Lock(
            id=f"{name}#{gen}", name=name, gen=gen, owner=owner or new_id(), until=now + ttl
        )
        try:
            await self.collection.insert_one(self._dump(lock))
        except DuplicateKeyError:
            return None  # another contender won this generation
        return lock

    async def renew(
        self, lock: Lock, ttl: timedelta, *, now: datetime | None = None
    ) -> Lock | None:
        """Extend a held lock to now + `ttl`; None if it was lost (it expired and was taken).

        Not an update of `until`: FerretDB applies an update as a read and a separate write,
        so an update could extend a lock that another holder has just taken over.
        """
        now = now or utcnow()
        gen = lock.gen + 1
        renewed = Lock(
            id=f"{lock.name}#{gen}", name=lock.name, gen=gen, owner=lock.owner, until=now + ttl
        )
        try:
            await self.collection.insert_one(self._dump(renewed))
        except DuplicateKeyError:
            return None
        await self.collection.delete_many({"name": lock.name, "gen": {"$lte": lock.gen}})
        return renewed

    async def claim(
        self, key: str, name: str, ttl: timedelta, *, now: datetime | None = None
    ) -> datetime | None:
        """Claim `key` (an `_id`, never reused while it matters) for `ttl` (claim_once);
        the claim's `until`, or None if another holds it. `name` is what `forget` deletes
        it by; `until` is what retention deletes it by, an hour after it passed."""
        now = now or utcnow()
        until = now + ttl
        mine = {"_id": key, "name": name, "owner": new_id(), "until": until}
        return until if await claim_once(self.collection, mine, now) is Claim.MINE else None

    async def drop_claim(self, key: str) -> None:
        """End a claim: only while it is surely still one's own (within its `until`), or
        once what it guarded is done for good."""
        await self.collection.delete_one({"_id": key})

    async def forget(self, name: str) -> None:
        """Drop every generation of `name`, and its claims (its id names a person that
        was erased)."""
        await self.collection.delete_many({"name": name})

    async def release(self, lock: Lock) -> None:
        await self.collection.delete_many({"name": lock.name, "gen": {"$lte": lock.gen}})

    async def acquire_within(
        self,
        name: str,
        ttl: timedelta,
        *,
        wait: timedelta,
        now: Callable[[], datetime] = utcnow,
        every: tuple[float, float] = (0.005, 0.02),
    ) -> Lock:
        """The lock `name`, tried until `wait` passes (then Busy), again after a pause
        drawn from `every` (seconds); `now`: the clock its times are read from."""
        deadline = asyncio.get_running_loop().time() + wait.total_seconds()
        while (lock := await self.acquire(name, ttl, now=now())) is None:
            if asyncio.get_running_loop().time() >= deadline:
                raise Busy(name)
            await asyncio.sleep(random.uniform(*every))  # noqa: S311 - jitter, not crypto
        return lock

    @asynccontextmanager
    async def hold(
        self,
        name: str,
        ttl: timedelta = timedelta(seconds=30),
        *,
        wait: timedelta = timedelta(0),
    ) -> AsyncIterator[Lock]:
        """`async with locks.hold(name, wait=...):`, trying until `wait` passes, else Busy."""
        lock = await self.acquire_within(name, ttl, wait=wait)
        try:
            yield lock
        finally:
            await self.release(lock)


class Lease:
    """One holder among processes for a long job (Telegram polling), kept while it runs.

    `acquire` waits until this process holds the lock `name`; `keep` renews it every third
    of `ttl` and returns when it is lost. A holder that dies stops renewing, so another
    process takes over within `ttl`. The lock's owner names the process (host and pid),
    for operators and tests; nothing personal.
    """

    def __init__(self, locks: LockRepository, name: str, ttl: timedelta, owner: str) -> None:
        self.locks = locks
        self.name = name
        self.ttl = ttl
        self.owner = owner
        self.lock: Lock | None = None

    @property
    def step(self) -> float:
        return self.ttl.total_seconds() / 3

    async def acquire(self) -> Lock:
        while True:
            try:
                self.lock = await self.locks.acquire(self.name, self.ttl, owner=self.owner)
            except DatabaseUnavailable:
                self.lock = None
            if self.lock is not None:
                return self.lock
            await asyncio.sleep(self.step)

    async def keep(self) -> None:
        """Renew until the lease is lost: taken by another process, or expired while the
        database could not be reached (then another process may hold it already)."""
        while self.lock is not None:
            await asyncio.sleep(self.step)
            try:
                renewed = await self.locks.renew(self.lock, self.ttl)
            except DatabaseUnavailable:
                if utcnow() < self.lock.until:
                    continue
                renewed = None
            self.lock = renewed

    async def release(self) -> None:
        lock, self.lock = self.lock, None
        if lock is not None:
            with contextlib.suppress(DatabaseUnavailable):  # it expires by itself then
                await self.locks.release(lock)


class KeptLock:
    """A lock on work in hand (a message being sent, a staff post), renewed every third of
    its length for as long as the work lasts (a Bot API call may take longer than the
    lock: aiogram waits 60 s), so no other process takes the work over and does it again
    meanwhile; `lost` says it could not be kept. Released on exit, unless `keep_on_exit`
    was called (then it runs out by itself)."""

    def __init__(
        self, locks: LockRepository, lock: Lock, ttl: timedelta, clock: Callable[[], datetime]
    ) -> None:
        self.locks = locks
        self.lock: Lock | None = lock
        self.ttl = ttl
        self.clock = clock
        self.lost = False
        self._release = True
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def keep_on_exit(self) -> None:
        self._release = False

    async def _renew(self) -> None:
        while self.lock is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), self.ttl.total_seconds() / 3)
            if self._done.is_set():
                return
            try:
                renewed = await self.locks.renew(self.lock, self.ttl, now=self.clock())
            except DatabaseUnavailable:
                if self.clock() < self.lock.until:
                    continue
                renewed = None
            if renewed is None:
                self.lost = True
                log.warning("lock lost while its work was in hand")
            self.lock = renewed

    async def __aenter__(self) -> KeptLock:
        self._task = asyncio.create_task(self._renew())
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Stopped and waited for, not cancelled: a renewal on its way would otherwise land
        # after the release and hold the message's lock for another lease.
        self._done.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self.lock is not None and self._release:
            await self.locks.release(self.lock)
