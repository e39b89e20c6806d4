"""Prometheus metrics. One registry per application (no global state), no personal labels."""

from __future__ import annotations

import gc
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pymongo import monitoring


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.database_up = Gauge("feedback_database_up", "1 if the last ping succeeded", registry=r)
        self.http_requests = Counter(
            "feedback_http_requests_total", "HTTP requests", ["route", "status"], registry=r
        )
        self.dialogue_events = Counter(
            "feedback_dialogue_events_total", "Customer inputs handled", ["channel"], registry=r
        )
        self.tickets_filed = Counter(
            "feedback_tickets_filed_total", "Tickets filed", ["channel", "category"], registry=r
        )
        self.privacy_requests = Counter(
            "feedback_privacy_requests_total",
            "Customers' requests about their data, by kind and who asked",
            ["kind", "source"],
            registry=r,
        )
        self.consent_refusals = Counter(
            "feedback_consent_refusals_total",
            "Processing consent declined",
            ["channel"],
            registry=r,
        )
        self.deliveries = Counter(
            "feedback_deliveries_total",
            "Outbound delivery attempts by outcome",
            ["channel", "outcome"],
            registry=r,
        )
        self.delivery_idle = Gauge(
            "feedback_delivery_idle",
            "1 while this process's delivery dispatcher sleeps between two drains",
            registry=r,
        )
        self.inputs_in_flight = Gauge(
            "feedback_inputs_in_flight",
            "Customer inputs this process is working on (bounded by BOT_INPUTS_IN_FLIGHT)",
            registry=r,
        )
        self.inputs_refused = Counter(
            "feedback_inputs_refused_total",
            "Customer inputs answered busy because BOT_INPUTS_IN_FLIGHT were being worked on",
            ["channel"],
            registry=r,
        )
        self.widget_connections = Gauge(
            "feedback_widget_connections", "Open widget connections in this process", registry=r
        )
        self.widget_events = Counter(
            "feedback_widget_events_total",
            "Widget events by name and outcome",
            ["event", "outcome"],
            registry=r,
        )
        self.retention_removed = Counter(
            "feedback_retention_removed_total",
            "Records the retention job removed or anonymized (C4.3), by rule",
            ["rule"],
            registry=r,
        )
        self.retention_rounds = Counter(
            "feedback_retention_rounds_total",
            "Retention rounds by outcome (ok, failed, busy: another process had the round)",
            ["outcome"],
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "feedback_delivery_seconds",
            "From a message being stored to it being sent",
            ["channel"],
            registry=r,
        )
        self.database_commands = Histogram(
            "feedback_database_command_seconds",
            "Database commands by name and collection (no filters, no values)",
            ["command", "collection"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        # (generation, seconds) of collections not yet observed (GcTimer)
        self.gc_pending: deque[tuple[int, float]] = deque(maxlen=100_000)
        self.gc_pauses = Histogram(
            "feedback_gc_pause_seconds",
            "Python garbage collections, by generation: the event loop stands still meanwhile",
            ["generation"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=r,
        )

    def record_gc_pauses(self) -> None:
        """Observe the collections GcTimer noted since the last call."""
        while self.gc_pending:
            generation, seconds = self.gc_pending.popleft()
            self.gc_pauses.labels(str(generation)).observe(seconds)


class GcTimer:
    """Times every garbage collection of this process, into `feedback_gc_pause_seconds`,
    while entered (`with GcTimer(metrics):`; the collector's callbacks are process-wide).
    A full collection of everything the service loads took 160-200 ms; docs/performance.md.

    The callback only appends to a deque: a collection can start anywhere, also inside
    prometheus_client while it holds the histogram's (non-reentrant) lock, so observing
    from the callback could deadlock. Metrics.record_gc_pauses observes them, before a
    scrape.
    """

    def __init__(self, metrics: Metrics) -> None:
        self.pending = metrics.gc_pending
        self.started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        elif self.started:
            self.pending.append((info["generation"], time.perf_counter() - self.started))

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        gc.callbacks.remove(self)


class CommandTimer(monitoring.CommandListener):
    """Times every command PyMongo sends, into `feedback_database_command_seconds`.

    Only the command's name and its collection are kept: which part of the service asks
    the database what, and how long it takes (a find that scans stands out at once).
    """

    def __init__(self, metrics: Metrics) -> None:
        self.histogram = metrics.database_commands
        self.started_commands: dict[int, tuple[str, str]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        collection = target if isinstance(target, str) else ""
        self.started_commands[event.request_id] = (event.command_name, collection)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._done(event.request_id, event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._done(event.request_id, event.duration_micros)

    def _done(self, request_id: int, micros: int) -> None:
        labels = self.started_commands.pop(request_id, None)
        if labels is not None:
            self.histogram.labels(*labels).observe(micros / 1_000_000)
