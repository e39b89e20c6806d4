"""A bound on the customer inputs one process works on at once.

Past its capacity, a service that takes on every input answers all of them late: each
waits behind the rest and the queue only grows (on the embedded database, before writes
were put in turn, hundreds at once even made each one slower: the round trip went to a
minute and the rate fell to 20/s; docs/performance.md). With a bound, one input more is
turned away at once with a "busy" answer that its client retries a moment later (the
widget keeps it in its outbox and backs off; Telegram delivers a webhook update again),
and what is taken on stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bot.metrics import Metrics


class Admission:
    """At most `limit` inputs at once in this process; another one is refused, not queued."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self.limit = limit
        self.metrics = metrics
        self.in_flight = 0

    def full(self, channel: str) -> bool:
        """Whether an input now would be refused (and counted as refused if so): a check
        before the work that comes ahead of `slot`, such as the rate limits."""
        if self.in_flight >= self.limit:
            self.metrics.inputs_refused.labels(channel).inc()
            return True
        return False

    @contextmanager
    def slot(self, channel: str) -> Iterator[bool]:
        """`with admission.slot("widget") as admitted:`; False: answer "busy" now."""
        if self.in_flight >= self.limit:
            self.metrics.inputs_refused.labels(channel).inc()
            yield False
            return
        self.in_flight += 1
        self.metrics.inputs_in_flight.inc()
        try:
            yield True
        finally:
            self.in_flight -= 1
            self.metrics.inputs_in_flight.dec()
