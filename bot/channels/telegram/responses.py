"""The pydantic models aiogram parses Bot API answers with, built once and kept.

aiogram reads every answer as `Response[<the method's result type>]`, a pydantic generic
model parametrized inside a function (BaseSession.check_response). pydantic keeps such a
class in a weak cache only, so it was garbage at the next collection and was built again,
3-5 ms of CPU, for nearly every call to Telegram: 6 % of the service's CPU with 300
Telegram users (docs/performance.md, fourth pass). Holding them here makes every
parametrization a cache hit.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import aiogram.methods
from aiogram.methods.base import Response, TelegramMethod


@functools.cache
def response_models() -> tuple[Any, ...]:
    """Response[T] for every result type of a Bot API method (41 types, ~50 ms once)."""
    results: dict[str, Any] = {}
    for _, method in inspect.getmembers(aiogram.methods, inspect.isclass):
        returning = getattr(method, "__returning__", None)
        if issubclass(method, TelegramMethod) and method is not TelegramMethod and returning:
            results.setdefault(repr(returning), returning)
    generic: Any = Response  # parametrized with run-time values, which mypy cannot follow
    return tuple(generic[returning] for returning in results.values())
