"""Magic filters checked on the event loop.

aiogram runs every plain (not ``async``) filter and handler through
``asyncio.to_thread`` (``CallableObject.call``), and a magic filter such as
``F.text`` is a plain callable. Each update passed four to six of them, so each
update went to a worker thread and back four to six times: a hand-off, a wake-up of
the event loop and a turn for the GIL each time, for a few attribute reads. They
are resolved in place instead (the gain under load was small, within the noise of
one run: docs/performance.md, fifth pass; the point is not to pay for threads that
do nothing).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from magic_filter import MagicFilter


def checked_in_place(magic: MagicFilter) -> Callable[[Any], Awaitable[Any]]:
    """The filter as a coroutine function, so aiogram awaits it instead of using a thread.

    It returns what the magic filter returns (aiogram treats a falsy result as
    "no match" and merges a dict into the handler's arguments, as before).
    """

    async def check(telegram_object: Any) -> Any:
        return magic.resolve(telegram_object)

    return check
