"""Per-update values and guards; no business logic here."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import BaseMiddleware
from aiogram.enums import ChatType
from aiogram.exceptions import (
    TelegramEntityTooLarge,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import Chat, TelegramObject, Update, User
from limits import RateLimitItemPerSecond
from limits.aio.storage import Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from bot.domain.models import new_id
from bot.storage import DatabaseUnavailable
from bot.storage.conversations import ConcurrentUpdate
from bot.storage.database import LocalLocks
from bot.storage.inbound import InboundEventRepository
from bot.storage.locks import Busy, Claim

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
TRANSIENT = (
    DatabaseUnavailable,
    ConcurrentUpdate,
    Busy,  # a lock held elsewhere (e.g. by a process that died, until it runs out)
    TelegramNetworkError,
    TelegramServerError,
    TelegramRetryAfter,
)


def is_transient(exc: BaseException) -> bool:
    """A failure that trying again later may cure (not a file too large to send, which
    aiogram counts as a network error)."""
    return isinstance(exc, TRANSIENT) and not isinstance(exc, TelegramEntityTooLarge)


class InOrderPerUser(BaseMiddleware):
    """Different users' updates are handled at once, each user's one at a time, in order.

    In long polling every update gets a task of its own (aiogram's handle_as_tasks).
    Tasks start in the order the updates came and reach this middleware, the outermost,
    before anything waits; asyncio.Lock lets its waiters in first come, first served.
    So one customer's inputs are applied in the order they sent them, while a slow
    database answer for one customer no longer holds up everyone else's.
    """

    def __init__(self) -> None:
        self.users = LocalLocks()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)  # noqa: S101 - registered as an update middleware
        user: User | None = getattr(event.event, "from_user", None)
        if user is None:
            return await handler(event, data)
        async with self.users.hold(user.id):
            return await handler(event, data)


class OncePerUpdate(BaseMiddleware):
    """Each (bot, update_id) is handled at most once, however often Telegram delivers it.

    The update is claimed before it is handled (bot.storage.inbound) and recorded as
    handled after, so a crash or a failure mid-way lets a re-delivery try again and a
    concurrent duplicate is dropped. The claim is kept while the update is handled, however
    long that takes, and given up on a failure only by its holder while it is surely
    still theirs. Handlers get `event_key` as the idempotency key of anything they store.
    """

    WAIT_STEP = 1.0  # seconds between looks at a claim held elsewhere

    def __init__(
        self,
        inbound: InboundEventRepository,
        bot_id: int,
        *,
        claim_ttl: timedelta,
        tries: int = 5,
    ) -> None:
        self.inbound = inbound
        self.bot_id = bot_id
        # Far longer than handling an update takes, retries included (_retrying: 15 s of
        # pauses); after a crash, how long its updates wait before another process takes
        # them (BOT_TELEGRAM_UPDATE_CLAIM_SECONDS).
        self.claim_ttl = claim_ttl
        self.tries = tries

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)  # noqa: S101 - registered as an update middleware
        key = f"telegram:{self.bot_id}:{event.update_id}"
        # One owner for every try (and, in polling, every round: bot.channels.telegram.
        # polling): a claim made by a try whose answer was lost, or left by a round whose
        # release failed, is ours.
        owner = data.get("update_claim_owner") or new_id()
        claim_again = functools.partial(self.inbound.claim, key, self.claim_ttl, owner=owner)
        claim = await self._retrying(claim_again, event)
        while claim is Claim.BUSY:
            # Being handled elsewhere, or claimed by a process that died (killed, and this
            # update delivered again after its restart). Dropping it would lose it in the
            # second case, so wait until it is handled or the claim runs out and is taken
            # over. This user's later updates wait meanwhile (InOrderPerUser): in order.
            await asyncio.sleep(self.WAIT_STEP)
            claim = await self._retrying(claim_again, event)
        if claim is Claim.DONE:
            log.info("duplicate update dropped", extra={"update_id": event.update_id})
            return None
        data["event_key"] = key
        # Stopped, and waited for, before the claim is given up or marked done: a renewal
        # still on its way could otherwise land after either and bring the claim back.
        stop = asyncio.Event()
        keeper = asyncio.create_task(self._keep(claim_again, event, stop))
        try:
            result = await self._retrying(handler, event, event, data)
        except BaseException:
            stop.set()
            await keeper
            with contextlib.suppress(DatabaseUnavailable):  # else the claim runs out
                await self.inbound.give_up(key, owner)
            raise
        stop.set()
        await keeper
        try:
            await self._retrying(self.inbound.done, event, key)
        except TRANSIENT:
            # Handled, but not marked so: a redelivery (there should be none: the update
            # is answered, or confirmed) would wait for the claim and handle it again,
            # which stores nothing twice. Failing here would handle it again for sure.
            log.warning("handled update not marked handled", extra={"update_id": event.update_id})
        return result

    async def _keep(
        self, claim_again: Callable[[], Awaitable[Claim]], event: Update, stop: asyncio.Event
    ) -> None:
        """Keep the update's claim while it is being handled, however long that takes (a
        slow Bot API, the database's retries): claimed again every third of its time, so
        it does not run out and another process handle the update a second time. Returns
        once `stop` is set, never in the middle of a renewal."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.claim_ttl.total_seconds() / 3)
            if stop.is_set():
                return
            try:
                claim = await claim_again()
            except Exception as exc:  # the next round may reach it, well before it runs out
                log.warning(
                    "update claim not kept",
                    extra={"update_id": event.update_id, "cause": type(exc).__name__},
                )
                continue
            if claim is not Claim.MINE:
                log.warning("update claim lost while handled", extra={"update_id": event.update_id})
                return

    async def _retrying(
        self, call: Callable[..., Awaitable[Any]], event: Update, *args: Any
    ) -> Any:
        """Call again after a failure for a passing reason (the claim, the handler).

        A user's updates are handled one at a time (InOrderPerUser, and in polling the
        poller as well), so waiting here holds back their later ones, which keeps them in
        order. Giving up leaves the update to the poller's next round (bot.channels.
        telegram.polling) or to Telegram's next webhook delivery. Handling again is safe:
        the dialogue does not apply an input twice (`event_key`).
        """
        for attempt in range(1, self.tries + 1):
            try:
                return await call(*args)
            except Exception as exc:
                if not is_transient(exc) or attempt == self.tries:
                    raise
                delay = min(30.0, 0.5 * 2**attempt)
                if isinstance(exc, TelegramRetryAfter):
                    delay = float(exc.retry_after)
                log.warning(
                    "update handling failed; retrying",
                    extra={"update_id": event.update_id, "cause": type(exc).__name__},
                )
                await asyncio.sleep(delay)
        return None


class FloodControl(BaseMiddleware):
    """Over `limit` messages in `window` seconds from one user: one friendly notice, then quiet.

    Counted in `storage` (bot.sharing): in memory for one process, in Redis when several
    share the work (in webhook mode any process may get a user's next update).

    A message is judged when it first reaches the process (`first_seen`: the poller's
    first fetch of it, the webhook's first request), not when it is handled: a user's
    messages are handled one at a time, and those queued behind a slow answer or a
    database outage are handled back to back however calmly they were sent, while a
    flood queued the same way must still count. A message sent longer than a window
    before it reached us (a backlog after downtime, handed over in one go) is not
    counted; an update handled again (OncePerUpdate's retries, the poller's rounds,
    Telegram's redeliveries) keeps its first verdict. A message no verdict is known for
    (first seen by another process) is judged when handled.
    """

    REMEMBERED = 10_000  # verdicts kept, by update id

    def __init__(
        self,
        limit: int,
        window: float,
        notify: Callable[[User], Awaitable[None]],
        storage: Storage,
    ) -> None:
        seconds = max(1, math.ceil(window))  # limits counts whole seconds
        self.messages = RateLimitItemPerSecond(limit, seconds)
        self.notice = RateLimitItemPerSecond(1, seconds)  # one notice per window of flooding
        self.limiter = SlidingWindowCounterRateLimiter(storage)
        self.notify = notify
        self.window = timedelta(seconds=seconds)
        self._verdicts: OrderedDict[int, bool] = OrderedDict()  # update id -> let through

    async def first_seen(self, update: Update) -> None:
        """Judge `update` now, as it reaches the process (a message in a private chat)."""
        message = update.message
        if (
            message is None
            or message.from_user is None
            or message.chat.type != ChatType.PRIVATE
            or update.update_id in self._verdicts
        ):
            return
        try:
            allowed = await self._judge(message.from_user, message.date)
        except Exception:
            log.warning("flood control: could not judge an update on arrival")
            return
        self._verdicts[update.update_id] = allowed
        while len(self._verdicts) > self.REMEMBERED:
            self._verdicts.popitem(last=False)

    async def _judge(self, user: User, sent: datetime | None) -> bool:
        if isinstance(sent, datetime) and sent < datetime.now(UTC) - self.window:
            return True  # sent long before it reached us: a backlog, not a flood
        return await self.limiter.hit(self.messages, "telegram-flood", str(user.id))

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        if user is None or chat is None or chat.type != ChatType.PRIVATE:
            return await handler(event, data)  # staff in their group are not throttled
        update: Update | None = data.get("event_update")
        update_id = None if update is None else update.update_id
        allowed = None if update_id is None else self._verdicts.get(update_id)
        if allowed is None:
            allowed = await self._judge(user, getattr(event, "date", None))
            if update_id is not None:
                self._verdicts[update_id] = allowed
        if allowed:
            return await handler(event, data)
        if await self.limiter.hit(self.notice, "telegram-flood-notice", str(user.id)):
            await self.notify(user)
        return None
