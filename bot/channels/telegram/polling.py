"""Long polling that confirms an update to Telegram only once it has been handled.

Telegram keeps an update until a getUpdates call confirms it (an `offset` above its
id). aiogram's `start_polling` asks for the next updates as soon as it has *started*
the last ones, so everything in hand is confirmed while it is still being handled: a
process killed then (or an update whose handling failed because the database was
down) loses those updates for good, up to the polling concurrency plus whatever waits
behind them for the same user.

Here each getUpdates call confirms only the updates handled: its offset is the oldest
update still in hand (or failed). Telegram then returns those again; the ones in hand
are skipped.
- One update per user at a time: a user's next update is started only once the one
  before it is handled, so their updates stay in order even when one fails and is
  tried again, and one user with a burst (an album is one update per photo) cannot
  take every slot.
- An update whose handling failed for a passing reason (`is_transient`: the database or
  the Bot API unreachable, after the middleware's own retries) is handled again when
  it comes back, after a pause (Telegram's `retry_after` if it gave one), up to
  `GIVE_UP_AFTER` rounds; then, or at once for any other failure, it is logged and
  confirmed, as aiogram does, so that one bad update cannot hold the others back for
  ever.
- A killed process's updates come back to the next poller, whose `OncePerUpdate` takes
  over their claims when they run out.

What it costs: while an update is in hand, each getUpdates call returns it at once, so
the poller waits for something to finish (at most `IDLE_WAIT`) before asking again; and
Telegram returns at most 100 updates from the offset, so one update stuck for long (a
dead process's claim, up to its time) holds back the ones more than 100 behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.types import Update
from aiogram.utils.backoff import Backoff, BackoffConfig

from bot.channels.telegram.middlewares import is_transient
from bot.domain.models import new_id

log = logging.getLogger(__name__)

# aiogram's own polling back-off after a failed getUpdates.
BACKOFF = BackoffConfig(min_delay=1.0, max_delay=5.0, factor=1.3, jitter=0.1)


@dataclass
class _Failed:
    retry_at: float  # event-loop time
    rounds: int  # how many times it was handled and failed


def _user_of(update: Update) -> int | None:
    with contextlib.suppress(Exception):  # an update type aiogram does not know
        user = getattr(update.event, "from_user", None)
        return None if user is None else int(user.id)
    return None


class ConfirmingPoller:
    IDLE_WAIT = 1.0  # seconds: longest wait for an update in hand before asking again
    RETRY_PAUSE = 5.0  # seconds before an update that failed for a passing reason is retried
    GIVE_UP_AFTER = 10  # rounds of failures (each with the middleware's retries) before
    # the update is confirmed unhandled: about five minutes of a database outage
    DRAIN_SECONDS = 8.0  # on stop, how long updates in hand may take to finish (app.py waits 10)

    def __init__(
        self,
        dispatcher: Dispatcher,
        bot: Bot,
        *,
        concurrency: int,
        timeout: int,
        allowed_updates: list[str] | None,
        first_seen: Callable[[Update], Awaitable[None]] | None = None,
    ) -> None:
        self.first_seen = first_seen  # told of each update when it is first fetched
        self.dispatcher = dispatcher
        self.bot = bot
        self.timeout = timeout
        self.allowed_updates = allowed_updates
        self.slots = asyncio.Semaphore(concurrency)
        self.owner = new_id()  # this poller's updates' claims (OncePerUpdate)
        # Every update received and not yet handled (in hand, failed, or behind an earlier
        # one of its user), with its user; then those in hand, and those that failed.
        self.unhandled: dict[int, int | None] = {}
        self.in_hand: dict[int, asyncio.Task[None]] = {}
        self.failed: dict[int, _Failed] = {}
        self.handled: set[int] = set()  # handled, not yet confirmed (an older one is not)
        self.highest: int | None = None  # the highest update_id received

    def offset(self) -> int | None:
        """The offset of the next getUpdates: the oldest update not yet handled."""
        if self.unhandled:
            oldest = min(self.unhandled)
            self.handled = {u for u in self.handled if u > oldest}
            return oldest
        self.handled.clear()
        return None if self.highest is None else self.highest + 1

    async def run(self) -> None:
        backoff = Backoff(config=BACKOFF)
        request: dict[str, Any] = {}
        if self.bot.session.timeout:  # as aiogram: the request outlives the long poll
            request["request_timeout"] = int(self.bot.session.timeout + self.timeout)
        try:
            while True:
                offset = self.offset()
                # With updates waiting Telegram answers at once (it returns them again).
                wait = 0 if self.unhandled else self.timeout
                method = GetUpdates(
                    offset=offset, timeout=wait, allowed_updates=self.allowed_updates
                )
                try:
                    updates = await self.bot(method, **request)
                except Exception as exc:  # as aiogram: polling must go on
                    log.warning(
                        "telegram getUpdates failed; retrying",
                        extra={"cause": type(exc).__name__, "delay": backoff.next_delay},
                    )
                    await backoff.asleep()
                    continue
                backoff.reset()
                self._forget_gone(updates)
                started = 0
                for update in updates:
                    if await self._take(update):
                        started += 1
                if not started and self.in_hand:
                    # Nothing new: what came back waits for what is in hand. Ask again
                    # when one of those is done.
                    await asyncio.wait(
                        self.in_hand.values(),
                        timeout=self.IDLE_WAIT,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                elif not started and self.unhandled:
                    await asyncio.sleep(self.IDLE_WAIT)  # a failed one's pause is not over
        finally:
            await self._drain()

    def _forget_gone(self, updates: list[Update]) -> None:
        """Updates waiting here that Telegram no longer returns (it keeps them 24 hours,
        and another poller may have handled them): not waited for any longer."""
        ids = {u.update_id for u in updates}
        beyond = max(ids) if len(ids) >= 100 else None  # a full answer: the rest not seen
        for update_id in list(self.unhandled):
            if update_id in self.in_hand or update_id in ids:
                continue
            if beyond is None or update_id < beyond:
                log.warning("telegram update gone while waiting", extra={"update_id": update_id})
                del self.unhandled[update_id]
                self.failed.pop(update_id, None)

    def _waits_for_an_earlier(self, update_id: int, user: int | None) -> bool:
        """Whether this user has an earlier update not yet handled: theirs go one by one."""
        return user is not None and any(
            other < update_id and other_user == user for other, other_user in self.unhandled.items()
        )

    async def _take(self, update: Update) -> bool:
        """Start handling `update`, unless it is in hand, handled, pausing after a failure,
        or behind an earlier one of the same user."""
        update_id = update.update_id
        self.highest = update_id if self.highest is None else max(self.highest, update_id)
        if update_id in self.in_hand or update_id in self.handled:
            return False
        user = _user_of(update)
        if update_id not in self.unhandled and self.first_seen is not None:
            await self.first_seen(update)  # e.g. flood control, on arrival (FloodControl)
        self.unhandled[update_id] = user
        failed = self.failed.get(update_id)
        if failed is not None and asyncio.get_running_loop().time() < failed.retry_at:
            return False
        if self._waits_for_an_earlier(update_id, user):
            return False
        await self.slots.acquire()
        self.in_hand[update_id] = asyncio.create_task(self._handle(update))
        return True

    async def _handle(self, update: Update) -> None:
        update_id = update.update_id
        loop = asyncio.get_running_loop()
        rounds = self.failed.pop(update_id, _Failed(0.0, 0)).rounds
        try:
            # One claim owner per poller and update: a claim its earlier round left (its
            # release failed with the database) is known as its own (OncePerUpdate).
            response = await self.dispatcher.feed_update(
                self.bot, update, update_claim_owner=f"{self.owner}:{update_id}"
            )
            if isinstance(response, TelegramMethod):
                await self.dispatcher.silent_call_request(self.bot, response)
        except asyncio.CancelledError:
            # Stopped, or a cancellation from inside: either way not handled, not confirmed.
            self.failed[update_id] = _Failed(loop.time() + self.RETRY_PAUSE, rounds)
            raise
        except Exception as exc:
            rounds += 1
            if is_transient(exc) and rounds < self.GIVE_UP_AFTER:
                pause = self.RETRY_PAUSE
                if isinstance(exc, TelegramRetryAfter):
                    pause = max(pause, float(exc.retry_after))
                log.warning(
                    "telegram update failed; it will be handled again",
                    extra={"update_id": update_id, "cause": type(exc).__name__, "round": rounds},
                )
                self.failed[update_id] = _Failed(loop.time() + pause, rounds)
            else:  # as aiogram: logged, and confirmed, so it cannot block the rest
                log.exception("telegram update failed; given up", extra={"update_id": update_id})
                self._handled(update_id)
        else:
            self._handled(update_id)
        finally:
            del self.in_hand[update_id]
            self.slots.release()

    def _handled(self, update_id: int) -> None:
        self.unhandled.pop(update_id, None)
        self.handled.add(update_id)

    async def _drain(self) -> None:
        """Let the updates in hand finish (a little while), then cancel the rest: they were
        not confirmed, so Telegram gives them to the next poller. Cancelled itself (a
        second stop), it still cancels them."""
        tasks = list(self.in_hand.values())
        if not tasks:
            return
        try:
            await asyncio.wait(tasks, timeout=self.DRAIN_SECONDS)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
