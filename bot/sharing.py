"""What several processes share through Redis (BOT_REDIS_URL), and its in-memory stand-in.

Unset, one process keeps everything in memory. Set, every process:
- routes socket.io emits through Redis (python-socketio's AsyncRedisManager), so an emit
  reaches a widget or a console page connected to another process;
- counts the rate limits that protect shared things (widget events and connections per
  address, form posts, console sign-ins, Telegram flood control) in Redis, so N processes
  allow what one would, not N times as much. While Redis cannot be reached, each process
  counts the limits by itself (logged), and live emits are lost (python-socketio logs
  them): widgets and console pages see what they missed when they next connect (the
  history replay). A customer's message pushed to the widget by delivery is not lost:
  the push is checked (`checked_publish`) and tried again later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import socketio
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError

from bot.config import Settings

log = logging.getLogger(__name__)

CHANNEL = "feedback-bot:socketio"  # the pub/sub channel; every process must use the same
LIMITS_PREFIX = "feedback-bot:limits"


class SharedStorage(RedisStorage):
    """limits' Redis storage on redis-py's asyncio client, with a way to close it, and
    counts in this process while Redis cannot be reached.

    limits defaults to coredis, which is not installed; the pool is ours so that the
    process can close its connections at shutdown.
    """

    RETRY_SECONDS = 5.0

    def __init__(self, url: str) -> None:
        # Short timeouts: a hit is on the path of every widget event and form post.
        self.pool = ConnectionPool.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        super().__init__(
            "async+" + url,
            implementation="redispy",
            key_prefix=LIMITS_PREFIX,
            connection_pool=self.pool,  # type: ignore[arg-type]  # handed to redis.asyncio.Redis
        )
        self.local = MemoryStorage()  # the counts while Redis cannot be reached
        self.down_until = 0.0  # monotonic time until which Redis is not tried; 0: up

    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        """Count a hit in Redis; while Redis cannot be reached, in this process.

        The limits guard against floods and password guessing. An outage of Redis must
        not turn them into a wall that stops every customer from being heard, nor make
        Telegram updates fail; nor may it lift them: each process then allows what one
        alone would (N processes, N times as much), not everything. After a failure Redis
        is left alone for RETRY_SECONDS, so that hits do not each wait for its timeout.
        """
        if not self._resting():
            if self.down_until:  # the first hit after a rest tries Redis; the others wait
                self.down_until = time.monotonic() + self.RETRY_SECONDS
            try:
                allowed = await super().acquire_sliding_window_entry(key, limit, expiry, amount)
            except RedisError as exc:
                self._failed(exc)
            else:
                self._answered()
                return allowed
        return await self.local.acquire_sliding_window_entry(key, limit, expiry, amount)

    async def clear_sliding_window(self, key: str, expiry: int) -> None:
        """Clear both counts (a sign-in that succeeded). Redis is tried even while it is
        left alone: a count left there would count against the user once it is back."""
        await self.local.clear_sliding_window(key, expiry)
        try:
            await super().clear_sliding_window(key, expiry)
        except RedisError as exc:
            self._failed(exc)

    def _resting(self) -> bool:
        return time.monotonic() < self.down_until

    def _failed(self, exc: RedisError) -> None:
        if not self.down_until:
            log.warning(
                "rate limits unavailable; counting in this process",
                extra={"cause": type(exc).__name__},
            )
        self.down_until = time.monotonic() + self.RETRY_SECONDS

    def _answered(self) -> None:
        if self.down_until:
            log.warning("rate limits shared again")
        self.down_until = 0.0

    async def aclose(self) -> None:
        await self.local.reset()
        await self.pool.aclose()


def rate_limit_storage(settings: Settings) -> Storage:
    """The storage of every rate limit in this process: Redis when shared, else memory."""
    if settings.redis_url is None:
        return MemoryStorage()
    return SharedStorage(settings.redis_url)


async def close_rate_limits(storage: Storage) -> None:
    if isinstance(storage, SharedStorage):
        await storage.aclose()


class PublishFailed(RuntimeError):
    """An emit inside `checked_publish` did not reach Redis (python-socketio gave up)."""


_CHECKED: ContextVar[bool] = ContextVar("checked_publish", default=False)


@contextlib.contextmanager
def checked_publish() -> Iterator[None]:
    """Emits inside raise PublishFailed when Redis could not take them. python-socketio
    only logs such a failure and goes on: right for a live view that is redrawn anyway,
    not for a customer's message that delivery would then count as sent."""
    token = _CHECKED.set(True)
    try:
        yield
    finally:
        _CHECKED.reset(token)


class CheckedRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """AsyncRedisManager whose publishing can be checked (`checked_publish`)."""

    async def _publish(self, data: Any) -> Any:
        # python-socketio's own: two tries, then it logs "giving up" and returns None;
        # a publish that went through returns Redis's count of receivers (an int).
        result = await super()._publish(data)
        if result is None and _CHECKED.get():
            raise PublishFailed("redis did not take the emit")
        return result


def socketio_manager(settings: Settings) -> socketio.AsyncManager | None:
    """None: python-socketio's default in-memory manager (one process)."""
    if settings.redis_url is None:
        return None
    # Not write_only: each process both publishes its emits and delivers the others' to
    # the clients connected to it.
    # No socket_timeout: the listener blocks on its subscription between messages.
    return CheckedRedisManager(
        settings.redis_url, channel=CHANNEL, redis_options={"socket_connect_timeout": 2}
    )


async def close_socketio_manager(manager: object) -> None:
    """Stop listening to Redis and close its connections (the manager has no close)."""
    if not isinstance(manager, socketio.AsyncRedisManager):
        return
    listener = getattr(manager, "thread", None)  # started at the first connection
    if listener is not None:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener
    for resource in (manager.pubsub, manager.redis):
        if resource is not None:
            with contextlib.suppress(Exception):  # already broken: nothing left to close
                await resource.aclose()
