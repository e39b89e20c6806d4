"""The lease behind "one Telegram poller at a time": renewed by its holder, taken over when
the holder dies, and never held by two once a renewal and a takeover race."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.storage import Database, Repositories
from bot.storage.locks import Lease

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


@pytest.fixture
async def other_process(
    mongo_uri: str, db_name: str, repos: Repositories
) -> AsyncIterator[Repositories]:
    """The same database through a connection of its own, as another process has."""
    database = Database(mongo_uri, db_name)
    yield Repositories.create(database)
    await database.close()


async def test_a_renewal_racing_a_takeover_leaves_one_holder(repos: Repositories) -> None:
    ttl = timedelta(seconds=30)
    for round_ in range(5):
        held = await repos.locks.acquire(f"poll{round_}", ttl, now=NOW)
        assert held is not None
        later = NOW + timedelta(seconds=31)  # the holder was late: others see it expired
        renewal, *takeovers = await asyncio.gather(
            repos.locks.renew(held, ttl, now=later),
            *(repos.locks.acquire(f"poll{round_}", ttl, now=later) for _ in range(10)),
        )
        winners = [w for w in (renewal, *takeovers) if w is not None]
        assert len(winners) == 1
        assert winners[0].gen == held.gen + 1


async def test_a_renewed_lock_keeps_its_holder_and_leaves_one_document(
    repos: Repositories,
) -> None:
    ttl = timedelta(seconds=30)
    held = await repos.locks.acquire("poll", ttl, now=NOW)
    assert held is not None
    for n in range(1, 4):
        renewed = await repos.locks.renew(held, ttl, now=NOW + timedelta(seconds=20 * n))
        assert renewed is not None
        assert renewed.owner == held.owner
        held = renewed
        # Long after the first expiry, nobody else gets it while it is renewed.
        assert await repos.locks.acquire("poll", ttl, now=NOW + timedelta(seconds=20 * n)) is None
    assert await repos.locks.collection.count_documents({"name": "poll"}) == 1


async def test_a_lease_passes_to_another_process_when_its_holder_dies(
    repos: Repositories, other_process: Repositories
) -> None:
    ttl = timedelta(seconds=0.6)
    first = Lease(repos.locks, "telegram-polling:1", ttl, owner="host:1")
    second = Lease(other_process.locks, "telegram-polling:1", ttl, owner="host:2")
    await first.acquire()
    keeping = asyncio.create_task(first.keep())
    waiting = asyncio.create_task(second.acquire())
    await asyncio.sleep(2.0)  # over three lease periods: renewals keep it with the first
    assert not waiting.done()
    assert not keeping.done()

    keeping.cancel()  # the first process dies: no renewal, no release
    with contextlib.suppress(asyncio.CancelledError):
        await keeping
    taken = await asyncio.wait_for(waiting, 5)
    assert taken.owner == "host:2"
    # The first comes back to life and learns, at its next renewal, that it lost the lease.
    await asyncio.wait_for(first.keep(), 5)
    assert first.lock is None

    # A holder that stops cleanly releases it: the other gets it at its next try.
    renewing = asyncio.create_task(second.keep())
    again = asyncio.create_task(first.acquire())
    await asyncio.sleep(0.5)
    assert not again.done()
    renewing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await renewing
    await second.release()
    assert (await asyncio.wait_for(again, 2)).owner == "host:1"
    await first.release()
