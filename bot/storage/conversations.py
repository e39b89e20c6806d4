from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import Field
from pymongo import ASCENDING, IndexModel
from pymongo.errors import ConnectionFailure, PyMongoError, ServerSelectionTimeoutError

from bot.domain.models import Conversation, Model, new_id, utcnow
from bot.storage.database import (
    DatabaseUnavailable,
    Doc,
    DuplicateKeyError,
    Repository,
    WriteNotSent,
)
from bot.storage.locks import Busy, Claim, LockRepository, claim_once

# A writer's claim on the next version of a dialogue: far longer than a write takes.
CLAIM_TTL = timedelta(seconds=30)
# A claimed version is written only this long before its claim could be taken over.
CLAIM_MARGIN = timedelta(seconds=10)
# A copy read (or written) longer ago than this has the stored version read again before
# it is written: the claim that would refuse it may have been swept (CLAIM_GRACE).
READ_FRESH = timedelta(seconds=60)
# Claims are swept this long after they ran out. A claim that refuses a copy was made at
# most CLAIM_TTL before the copy was read (its version was written after the read, within
# the claim's time), so it is there for READ_FRESH after the read with room for clocks
# that differ between processes by minutes.
CLAIM_GRACE = timedelta(minutes=5)
# Deleting a dialogue waits this long for a writer of it to finish (or for a dead
# writer's claim to run out and be taken over) before it gives up (Busy).
DELETE_WAIT = CLAIM_TTL + timedelta(seconds=10)


@dataclass
class _Held:
    """A version claimed by `next_version`, for the write made inside it."""

    key: str  # "<epoch>@<version>"
    until: datetime | None = None  # once claimed
    written: bool = False  # the write was started (it may have reached the server)
    give_back: bool = False  # nothing was written: drop the claim on the way out


_HELD: ContextVar[_Held | None] = ContextVar("conversation_version_held", default=None)


class ConcurrentUpdate(RuntimeError):
    """Another event changed the same dialogue first; reload and apply again."""


class VersionClaim(Model):
    id: str = Field(alias="_id")  # "<epoch>@<version>", or a takeover's marker
    owner: str
    until: datetime


class VersionClaimRepository(Repository[VersionClaim]):
    """Claims on the versions of dialogues: `<epoch>@<n>` is held by the one writer of
    version n of the dialogue whose epoch it is, and kept after that version is written,
    so a copy of an older version cannot claim it again. The `_id` names no one (the
    epoch is random), so an erasure leaves them; `sweep` deletes them CLAIM_GRACE after
    they ran out (every process, every minute: RetentionService.run_periodically)."""

    collection_name = "conversation_versions"
    model = VersionClaim
    indexes = (IndexModel([("until", ASCENDING)]),)

    async def sweep(self, now: datetime) -> int:
        """Delete the claims that ran out over CLAIM_GRACE before `now`; how many.

        One statement, unbounded: a minute's claims. (FerretDB reads the whole collection
        for it, a few minutes' claims: far less than a delete per claim would cost.)"""
        result = await self.collection.delete_many({"until": {"$lt": now - CLAIM_GRACE}})
        return result.deleted_count


class ConversationRepository(Repository[Conversation]):
    """Dialogue state, one document per customer identity, versioned."""

    collection_name = "conversations"
    model = Conversation
    indexes = (IndexModel([("updated_at", ASCENDING)]),)  # retention of idle drafts

    def __init__(
        self, *args: object, locks: LockRepository, claims: VersionClaimRepository, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.locks = locks
        self.claims = claims

    def _load(self, doc: Doc) -> Conversation:
        conversation = super()._load(doc)
        conversation._read_at = time.monotonic()
        return conversation

    async def save(self, conversation: Conversation) -> Conversation:
        """Compare-and-set on `version`: a writer holding a stale copy gets ConcurrentUpdate.

        A new dialogue is inserted: of two writers, the unique `_id` lets one in. After
        that, the writer of version n+1 first claims `<epoch>@<n+1>` (by `_id` only, in
        a collection of its own), then writes. Of two writers holding version n, one gets
        the claim; a stale writer (holding n while n+1 is stored) finds the claim kept.
        So a step costs a read, an insert and a write (it was five commands: the claim
        was dropped after the write, so the stored version had to be read again first).
        """
        updated = conversation.model_copy(
            update={"version": conversation.version + 1, "updated_at": utcnow()}
        )
        if _never_stored(conversation):
            updated.epoch = new_id()
            try:
                await self.collection.insert_one(self._dump(updated))
            except DuplicateKeyError:
                raise ConcurrentUpdate(conversation.id) from None
        else:
            async with self._writing_next(conversation):
                if updated.epoch is None:
                    updated.epoch = new_id()  # stored before epochs: from now on it has one
                # By `_id` alone: FerretDB reads the whole collection for a filter with
                # any other field. The claim makes it safe; the count is a last guard.
                result = await self.collection.replace_one(
                    {"_id": conversation.id}, self._dump(updated)
                )
                if result.matched_count != 1:
                    raise ConcurrentUpdate(conversation.id)
        updated._read_at = time.monotonic()  # what is stored now
        return updated

    async def delete(self, conversation: Conversation) -> None:
        """Delete the dialogue as a write of its next version, so a copy of an older one
        written meanwhile is refused, not written over whatever comes after. A copy of a
        dialogue that was not stored deletes nothing."""
        if _never_stored(conversation):
            return
        async with self._writing_next(conversation):
            await self.collection.delete_one({"_id": conversation.id})

    async def erase(self, conversation_id: str) -> int:
        """Delete the dialogue whatever its version (an erasure): waits for a writer of
        it to finish; Busy if it cannot within DELETE_WAIT. 1 if one was deleted, else 0."""
        deadline = time.monotonic() + DELETE_WAIT.total_seconds()
        pause = 0.02
        while (current := await self.get(conversation_id)) is not None:
            try:
                await self.delete(current)
            except ConcurrentUpdate:
                if time.monotonic() >= deadline:
                    raise Busy(conversation_id) from None
                await asyncio.sleep(pause * random.uniform(0.5, 1.5))  # noqa: S311 - jitter
                pause = min(pause * 2, 1.0)
            else:
                return 1
        return 0

    @asynccontextmanager
    async def next_version(self, conversation: Conversation) -> AsyncIterator[None]:
        """Inside: this caller is the one writer of the version after `conversation`'s,
        before it writes it (ConcurrentUpdate if another is, or was). For a step whose
        effects must not happen from a stale copy (a consent recorded, a ticket filed):
        they are made inside, and the `save` or `delete` of that version inside writes
        under this claim. Given back if nothing was written. A dialogue never stored, or
        stored before epochs, is claimed by its write, as before."""
        if _never_stored(conversation) or conversation.epoch is None:
            yield
            return
        held = _Held(f"{conversation.epoch}@{conversation.version + 1}")
        token = _HELD.set(held)
        try:
            async with self._writing_next(conversation):
                try:
                    yield
                except BaseException:
                    if not held.written:  # nothing sent: let the step be tried again now
                        held.give_back = True
                    raise
        except ConnectionFailure as exc:  # as every public method of a repository does
            raise DatabaseUnavailable(exc) from exc
        finally:
            _HELD.reset(token)

    @asynccontextmanager
    async def _writing_next(self, conversation: Conversation) -> AsyncIterator[None]:
        """Inside: this caller is the one writer of the version after `conversation`'s
        (a stored one). ConcurrentUpdate if another is, or was."""
        held = _HELD.get()
        if conversation.epoch is None or (
            held is not None and held.key != f"{conversation.epoch}@{conversation.version + 1}"
        ):
            held = None  # not the version next_version claims (or none is)
        if held is not None and held.until is not None:  # written under next_version's claim
            if utcnow() >= held.until - CLAIM_MARGIN:  # the step took too long
                raise ConcurrentUpdate(conversation.id)
            held.written = True
            try:
                yield
            except BaseException as exc:
                if _not_sent(exc):
                    held.written = False
                raise
            return
        if conversation.epoch is None:
            async with self._legacy_claim(conversation.id, conversation.version) as claimed:
                if not claimed:
                    raise ConcurrentUpdate(conversation.id)
                yield
            return
        key = f"{conversation.epoch}@{conversation.version + 1}"
        until = await self._claim(key, conversation)
        if until is None:
            raise ConcurrentUpdate(conversation.id)
        read_at = conversation._read_at
        held_long = read_at is None or time.monotonic() - read_at > READ_FRESH.total_seconds()
        if (held_long and not await self._still_at(conversation)) or (
            utcnow() >= until - CLAIM_MARGIN  # too late to write before it could be taken over
        ):
            raise ConcurrentUpdate(conversation.id)
        if held is not None:  # next_version's own claim: the write comes later, inside
            held.until = until
        try:
            yield
        except BaseException as exc:
            # Nothing was written (the write waited for its turn, or for a server, and
            # gave up; or, under next_version, the step failed before its write): let
            # the step be tried again now, not after the claim ran out.
            if _not_sent(exc) or (held is not None and held.give_back):
                await self._give_back(key, until)
            raise

    async def _give_back(self, key: str, until: datetime) -> None:
        """Drop a claim under which nothing was written, while it is surely still ours."""
        if utcnow() < until - CLAIM_MARGIN:
            # Whatever fails here, the claim runs out, and the error that brought us here
            # is the one to raise.
            with contextlib.suppress(DatabaseUnavailable, PyMongoError):
                await self.claims.collection.delete_one({"_id": key})

    async def _claim(self, key: str, conversation: Conversation) -> datetime | None:
        """Claim `key`, version n+1 of `conversation` (at n); its `until`, or None."""
        now = utcnow()
        mine = {"_id": key, "owner": new_id(), "until": now + CLAIM_TTL}
        claims = self.claims.collection
        try:
            await claims.insert_one(mine)
        except DuplicateKeyError:
            pass
        else:
            return now + CLAIM_TTL
        held: Doc | None = await claims.find_one({"_id": key})
        if held is None or held["until"] > now:
            # Written, or being written; or (gone) swept: written long ago.
            return None
        # Run out: written long ago (this copy is stale), or its writer died before
        # writing. Only the stored version tells. A dead writer's claim is taken over as
        # claim_once takes over any claim that ran out (through a marker, where exactly
        # one taker wins); then the version is read again, as a taker before us may
        # have written it.
        if not await self._still_at(conversation):
            return None
        if await claim_once(claims, mine, now) is not Claim.MINE:
            return None
        if not await self._still_at(conversation):
            return None
        return now + CLAIM_TTL

    async def _still_at(self, conversation: Conversation) -> bool:
        stored: Doc | None = await self.collection.find_one(
            {"_id": conversation.id}, projection={"version": 1, "epoch": 1}
        )
        return (
            stored is not None
            and stored.get("epoch") == conversation.epoch
            and int(stored["version"]) == conversation.version
        )

    @asynccontextmanager
    async def _legacy_claim(self, conversation_id: str, expected: int) -> AsyncIterator[bool]:
        """For a dialogue stored before epochs (none drawn yet), the claims of before:
        whether this caller may write the version after `expected`: it holds the claim
        to it (in the locks, by `_id`), with time left, and `expected` is the version
        stored, still without an epoch. The claim is dropped after: once that version is
        written (a later claimant finds a newer version stored), or when nothing was
        written while it is surely still ours (within its `until`, before anyone could
        take it over); else it runs out. The version it writes draws an epoch, so this
        happens once a dialogue."""
        key = f"conversation:{conversation_id}@{expected + 1}"
        until = await self.locks.claim(key, f"conversation:{conversation_id}", CLAIM_TTL)
        if until is None:
            yield False
            return
        wrote = False
        try:
            stored: Doc | None = await self.collection.find_one(
                {"_id": conversation_id}, projection={"version": 1, "epoch": 1}
            )
            if (
                stored is None
                or stored.get("epoch") is not None  # deleted and started afresh meanwhile
                or int(stored["version"]) != expected
            ):
                yield False
                return
            if utcnow() >= until - CLAIM_MARGIN:
                yield False  # too slow: the claim could be taken over before we write
                return
            yield True
            wrote = True
        finally:
            if wrote or utcnow() < until - CLAIM_MARGIN:
                await self.locks.drop_claim(key)

    async def delete_for_customer(self, customer_id: str) -> int:
        """Erase every dialogue of the customer (one, by the channel identity it is kept
        under; the search is by customer, for any other)."""
        cursor = self.collection.find({"customer_id": customer_id}, projection={"_id": 1})
        ids = [str(doc["_id"]) async for doc in cursor]
        return sum([await self.erase(conversation_id) for conversation_id in ids])

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

        As a write of its next version, so a customer's step that comes in now either
        lands first (and the dialogue is no longer idle) or finds it gone and starts
        afresh.
        """
        current = await self.get(conversation_id)
        if current is None or current.updated_at >= before:
            return False
        try:
            await self.delete(current)
        except ConcurrentUpdate:
            return False  # someone is writing it right now: not idle
        return True

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


def _not_sent(exc: BaseException) -> bool:
    """Whether a write that raised `exc` surely never reached the server: it gave up
    waiting for its turn (WriteGate) or for a server (raw, or as a repository raises it)."""
    if isinstance(exc, DatabaseUnavailable) and not isinstance(exc, WriteNotSent):
        exc = exc.__cause__ or exc
    return isinstance(exc, (WriteNotSent, ServerSelectionTimeoutError))


def _never_stored(conversation: Conversation) -> bool:
    """A copy made here (not read from the database) of a dialogue not stored then."""
    return conversation.version == 0 and conversation._read_at is None
