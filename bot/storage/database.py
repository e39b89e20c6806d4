"""One AsyncMongoClient per process, and the base of every repository."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel
from pymongo import DESCENDING, AsyncMongoClient, IndexModel, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, ConnectionFailure, DuplicateKeyError

Doc = dict[str, Any]
# A counter's next number: given the search for the highest stored, and whether the
# number it gave last was found taken (SequenceRepository.next).
Counter = Callable[[Callable[[], Awaitable[int]], bool], Awaitable[int]]
M = TypeVar("M", bound=BaseModel)


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached; nothing was written."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(
            "The database is unreachable (check MONGODB_URI, or that the embedded "
            f"database is running): {type(cause).__name__}"
        )


class WriteNotSent(DatabaseUnavailable):
    """A write that waited too long for its turn (WriteGate): it was never sent."""


class WriteGate:
    """How many writes one process sends the database at once; no bound until limited.

    SQLite, under the embedded FerretDB, lets one writer in at a time, and a writer that
    finds it busy sleeps and tries again, up to 100 ms a sleep. With dozens of writes at
    once the writers spent more time asleep than writing: at 250 widget inputs/s each
    write took 100-170 ms and the service fell to 20-70 inputs/s (docs/performance.md).
    Queued here instead, a few at a time, they are let in as soon as SQLite is free.
    MongoDB takes concurrent writes well, so there is no bound by default.
    """

    def __init__(self, wait_seconds: float = 5.0) -> None:
        self.limit: int | None = None
        self.wait_seconds = wait_seconds
        self._turns: asyncio.Semaphore | None = None

    def limit_to(self, limit: int | None) -> None:
        if limit != self.limit:  # a new semaphore would not count the writes in the old one
            self.limit = limit
            self._turns = None if limit is None else asyncio.Semaphore(limit)

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for a turn, at most `wait_seconds` (the driver's own wait for a server):
        while the database is away the writes ahead fail one by one, and the ones queued
        behind them should not wait for all of those to fail first."""
        turns = self._turns
        if turns is None:
            yield
            return
        try:
            async with asyncio.timeout(self.wait_seconds):
                await turns.acquire()
        except TimeoutError as exc:
            raise WriteNotSent(exc) from exc
        try:
            yield
        finally:
            turns.release()


WRITES = (
    "insert_one",
    "insert_many",
    "replace_one",
    "update_one",
    "update_many",
    "delete_one",
    "delete_many",
    "find_one_and_update",
    "find_one_and_replace",
    "find_one_and_delete",
    "bulk_write",
)


class GatedCollection(AsyncCollection[Doc]):
    """A collection whose writes (WRITES) each wait their turn at the process's WriteGate.

    Reached through GatedDatabase (`db[name]`, `db.name`, `get_collection`). pymongo's
    `with_options`, `create_collection` and sub-collections return plain collections,
    which are not gated; the repositories use none of them for writes.
    """

    def __init__(self, database: GatedDatabase, name: str, *args: Any, **options: Any) -> None:
        super().__init__(database, name, *args, **options)
        self._gate = database.gate


def _gated(write: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(write)
    async def gated(self: GatedCollection, *args: Any, **kwargs: Any) -> Any:
        async with self._gate.turn():
            return await write(self, *args, **kwargs)

    return gated


for _write in WRITES:
    setattr(GatedCollection, _write, _gated(getattr(AsyncCollection, _write)))


class GatedDatabase(AsyncDatabase[Doc]):
    """A database whose collections are GatedCollections sharing one WriteGate."""

    def __init__(self, client: AsyncMongoClient[Doc], name: str, gate: WriteGate) -> None:
        super().__init__(client, name)
        self.gate = gate

    def __getitem__(self, name: str) -> AsyncCollection[Doc]:
        return GatedCollection(self, name)

    def get_collection(self, name: str, *args: Any, **options: Any) -> AsyncCollection[Doc]:
        return GatedCollection(self, name, *args, **options)


class Database:
    def __init__(
        self,
        uri: str,
        name: str,
        timeout_ms: int = 5000,
        listeners: Sequence[monitoring.CommandListener] = (),
    ) -> None:
        self.client: AsyncMongoClient[Doc] = AsyncMongoClient(
            uri,
            event_listeners=list(listeners),
            tz_aware=True,  # timezone-aware UTC datetimes everywhere
            tzinfo=UTC,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            appname="feedback-bot",
        )
        self.writes = WriteGate(wait_seconds=timeout_ms / 1000)
        self.db: AsyncDatabase[Doc] = GatedDatabase(self.client, name, self.writes)

    async def ping(self) -> None:
        try:
            await self.db.command("ping")
        except ConnectionFailure as exc:
            raise DatabaseUnavailable(exc) from exc

    async def is_ferretdb(self) -> bool:
        """Whether the server is FerretDB (its buildInfo names its version)."""
        try:
            info = await self.client.admin.command("buildInfo")
        except ConnectionFailure as exc:
            raise DatabaseUnavailable(exc) from exc
        return "ferretdbVersion" in info

    async def close(self) -> None:
        await self.client.close()


def _translate_errors(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except ConnectionFailure as exc:
            raise DatabaseUnavailable(exc) from exc

    wrapper._translates_errors = True  # type: ignore[attr-defined]
    return wrapper


@dataclass(frozen=True)
class Inserted(Generic[M]):
    """The result of an idempotent insert: the stored document, and whether it is new."""

    item: M
    created: bool


class LocalLocks:
    """In-process asyncio locks by key, each forgotten when nobody holds or awaits it.

    Not a lock between processes (that is LockRepository): a way for one process to keep
    its own tasks from racing each other on one key, first come, first served.
    """

    def __init__(self) -> None:
        self._locks: dict[object, asyncio.Lock] = {}
        self._users: dict[object, int] = {}  # holders and waiters, to forget an idle lock

    @contextlib.asynccontextmanager
    async def hold(self, key: object) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                del self._locks[key]


class Repository(Generic[M]):
    """One collection, typed models in and out.

    Every public coroutine method of a subclass turns a lost connection into
    `DatabaseUnavailable`, so callers handle one clear error, not the driver's zoo.
    """

    collection_name: ClassVar[str]
    model: type[M]
    indexes: ClassVar[tuple[IndexModel, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in dir(cls):
            member = getattr(cls, name)
            if (
                not name.startswith("_")
                and inspect.iscoroutinefunction(member)
                and not getattr(member, "_translates_errors", False)
            ):
                setattr(cls, name, _translate_errors(member))

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.collection: AsyncCollection[Doc] = db[self.collection_name]
        self._numbering = LocalLocks()  # _insert_numbered's, per scope

    async def ensure_indexes(self) -> None:
        """Create the collection and the indexes that are missing, one per command.

        FerretDB v1.24 panics (and drops the connection) on a createIndexes
        command that mixes existing and new indexes, as happens at every restart;
        asking only for the missing ones, one at a time, works on both servers.
        """
        db = self.collection.database
        if not await db.list_collection_names(filter={"name": self.collection_name}):
            # Made now, not at the first write, so that it is there to prepare (index_ids).
            with contextlib.suppress(CollectionInvalid):  # another process was first
                await db.create_collection(self.collection_name)
        if not self.indexes:
            return
        existing = {index["name"] async for index in await self.collection.list_indexes()}
        for index in self.indexes:
            if index.document["name"] not in existing:
                await self.collection.create_indexes([index])

    async def _put(self, doc: Doc, collection: AsyncCollection[Doc] | None = None) -> None:
        """Write `doc` whole under its `_id`, whether or not one is stored.

        An upsert that loses the race to insert fails on FerretDB with a duplicate key
        (MongoDB retries it by itself); then the document is there, and is written over.
        """
        target = self.collection if collection is None else collection
        try:
            await target.replace_one({"_id": doc["_id"]}, doc, upsert=True)
        except DuplicateKeyError:
            await target.replace_one({"_id": doc["_id"]}, doc)

    def _dump(self, item: M) -> Doc:
        return item.model_dump(by_alias=True, mode="python")

    def _load(self, doc: Doc) -> M:
        return self.model.model_validate(doc)

    async def get(self, item_id: str) -> M | None:
        doc = await self.collection.find_one({"_id": item_id})
        return None if doc is None else self._load(doc)

    async def insert(self, item: M) -> M:
        await self.collection.insert_one(self._dump(item))
        return item

    async def _insert_unique(self, item: M, key: Doc) -> Inserted[M]:
        """Insert, or return the document already stored under the unique `key`."""
        try:
            await self.collection.insert_one(self._dump(item))
        except DuplicateKeyError:
            existing = await self.collection.find_one(key)
            if existing is None:  # the duplicate was on another unique index
                raise
            return Inserted(self._load(existing), created=False)
        return Inserted(item, created=True)

    async def _insert_numbered(
        self,
        build: Callable[[int], M],
        *,
        scope: Doc,
        field: str,
        key: Doc | None = None,
        counter: Counter | None = None,
        attempts: int = 200,
    ) -> Inserted[M]:
        """Insert with the next number in `scope` (last + 1).

        The last number is found by a search for the highest in `scope`, or, with
        `counter`, drawn from a counter kept by `_id` (SequenceRepository.next; the search
        starts it when it has none, and moves it on when the number it gave was taken):
        FerretDB answers the search by reading the whole collection.

        The unique index on (scope, field) decides between writers that pick the
        same number: the loser reads again and takes the next one. With `key`, a
        document already stored under that idempotency key is returned instead.

        In one process the numbers of a scope are drawn one at a time: when many drew at
        once (300 Telegram users submitting), each lost race cost another two searches of
        the collection, and the losers raced again (docs/performance.md). So only writers
        in different processes can still collide.
        """
        async with self._numbering.hold(tuple(sorted(scope.items()))):
            return await self._insert_next(
                build, scope=scope, field=field, key=key, counter=counter, attempts=attempts
            )

    async def _insert_next(
        self,
        build: Callable[[int], M],
        *,
        scope: Doc,
        field: str,
        key: Doc | None,
        counter: Counter | None,
        attempts: int,
    ) -> Inserted[M]:
        async def highest() -> int:
            last = await self.collection.find_one(
                scope, sort=[(field, DESCENDING)], projection={field: 1}
            )
            return 0 if last is None else int(last[field])

        for attempt in range(attempts):
            # Past the first attempt, the number drawn before was found taken.
            item = build(await counter(highest, attempt > 0) if counter else await highest() + 1)
            try:
                await self.collection.insert_one(self._dump(item))
            except DuplicateKeyError:
                if key is not None and (existing := await self.collection.find_one(key)):
                    return Inserted(self._load(existing), created=False)
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311
                continue
            return Inserted(item, created=True)
        raise RuntimeError(f"no free number in {self.collection_name} after {attempts} tries")

    # Retention (C4.3): neither server may use TTL indexes, so a job deletes in batches.

    async def count_before(self, field: str, before: object, where: Doc | None = None) -> int:
        """How many documents have `field` earlier than `before` (and match `where`)."""
        return await self.collection.count_documents({**(where or {}), field: {"$lt": before}})

    async def delete_before(
        self, field: str, before: object, *, where: Doc | None = None, limit: int = 500
    ) -> int:
        """Delete up to `limit` documents with `field` earlier than `before`; how many went.

        The condition is repeated in the delete, so a document that changed since it was
        read stays; a delete is one statement, so two jobs never both count a document.
        """
        query = {**(where or {}), field: {"$lt": before}}
        cursor = self.collection.find(query, projection={"_id": 1}).sort(field, 1).limit(limit)
        ids = [doc["_id"] async for doc in cursor]
        if not ids:
            return 0
        result = await self.collection.delete_many({**query, "_id": {"$in": ids}})
        return result.deleted_count


async def attachment_refs_in_use(collection: AsyncCollection[Doc], refs: list[str]) -> set[str]:
    """Which of `refs` an attachment of some document in `collection` points to (tickets and
    messages both keep `attachments`)."""
    cursor = collection.find({"attachments.file_ref": {"$in": refs}}, projection={"attachments": 1})
    wanted = set(refs)
    return {
        str(a["file_ref"])
        async for doc in cursor
        for a in doc.get("attachments", [])
        if a.get("file_ref") in wanted
    }


# Re-exported so the rest of the storage package imports from one place.
__all__ = [
    "ConnectionFailure",
    "Database",
    "DatabaseUnavailable",
    "Doc",
    "DuplicateKeyError",
    "Inserted",
    "Repository",
]
