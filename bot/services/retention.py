"""Retention (contract C4.3): "retention periods are configuration; expiry is enforced by
a job, not by hand".

Neither server may use TTL indexes (FerretDB v1 has none), there are no transactions and
no update is atomic (bot/storage/locks.py). So a job walks each rule in bounded batches.
One process runs a round at a time (the lock `retention`), and each step is correct on its
own even if two rounds do run at once: every removal repeats its condition in the write,
and the two that call the privacy service take a lock per ticket or customer and re-read
first. Running it again removes nothing more: it is idempotent.

The steps run in an order that lets the dry run (`plan`) count exactly what a round then
removes: a draft deleted first frees its uploads for the uploads step; a ticket
anonymized before the customers step lets its customer go in the same round; expired
upload tokens and locks go before an erasure would remove them under another name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.config import Settings
from bot.domain.models import Customer, PrivacyRequestState
from bot.domain.privacy import conversation_key
from bot.metrics import Metrics
from bot.services.delivery import Clock
from bot.services.privacy import ERASURE_RESUME_AFTER, PrivacyService
from bot.storage import DatabaseUnavailable, Repositories
from bot.storage.locks import Busy
from bot.storage.tickets import CLOSED_STATUSES

log = logging.getLogger(__name__)

# The rules, in the order a round applies them, with what each removes.
RULES: dict[str, str] = {
    "drafts": "abandoned dialogue drafts (deleted)",
    "uploads": "uploads no ticket, message or draft refers to (deleted)",
    "upload_tokens": "expired upload tokens (deleted)",
    "locks": "locks and dialogue version claims expired for over an hour (deleted)",
    "closed_tickets": "closed tickets (personal data erased)",
    "customers": "customers with nothing left to keep (erased)",
    "refusals": "refused-consent counts (deleted)",
    "audit": "audit entries (deleted)",
    "privacy_requests": "answered privacy requests (deleted)",
    "inbound_events": "handled-event keys (deleted)",
    "pending": "erasure clean-up finished (Telegram topics)",
}

# Telegram redelivers an update for at most 24 hours, and a widget resends a message
# only while its page is open, so a key older than that can never be seen again: 30
# days is far beyond both, and the index stays small.
INBOUND_KEEP = timedelta(days=30)
# A lock is only removed an hour after it expired. A holder whose lease ran out may still
# be finishing (it re-reads what it changes), and a contender that read the expired lock
# is inserting the next generation within milliseconds, not an hour later; release()
# deletes fresher locks than these every time.
LOCK_GRACE = timedelta(hours=1)
# An upload is attached within seconds of being made; a day leaves room for a slow client.
UPLOAD_GRACE = timedelta(days=1)

ROUND_LOCK = "retention"
ROUND_TTL = timedelta(minutes=30)  # longer than a round of bounded batches takes
ITEM_TTL = timedelta(minutes=5)  # one anonymization or erasure
BATCH = 200  # per rule and round
FIRST_DELAY_SECONDS = 10.0  # after the indexes are ready: let the channels start first
BACKLOG_PAUSE_SECONDS = 1.0  # between rounds while a rule still has a full batch to do
MAX_ROUNDS = 10_000  # drain(): a safety stop, far beyond any backlog
CLAIM_SWEEP_SECONDS = 60.0  # between sweeps of the dialogues' version claims


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each kind of record is kept (days)."""

    closed_ticket_days: int
    draft_days: int
    refusal_days: int
    audit_days: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(
            closed_ticket_days=settings.retention_closed_ticket_days,
            draft_days=settings.retention_draft_days,
            refusal_days=settings.retention_refusal_days,
            audit_days=settings.retention_audit_days,
        )


@dataclass(frozen=True)
class Cutoffs:
    """Everything before these instants is due."""

    closed_ticket: datetime
    draft: datetime
    refusal_day: str  # refusals are stored by ISO day
    audit: datetime
    inbound: datetime
    lock: datetime
    upload: datetime
    now: datetime


@dataclass
class RetentionReport:
    """Counts per rule (never anything personal)."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    dry_run: bool = False
    busy: bool = False  # another process had the round: nothing was done
    failed: list[str] = field(default_factory=list)  # rules that failed; retried next round
    more: bool = False  # a rule filled its batch: another round has more to do

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, other: RetentionReport) -> None:
        for rule, count in other.counts.items():
            self.counts[rule] = self.counts.get(rule, 0) + count
        self.failed += [rule for rule in other.failed if rule not in self.failed]
        self.busy = other.busy
        self.more = other.more


Step = Callable[[Cutoffs], Awaitable[tuple[int, bool]]]


class RetentionService:
    def __init__(
        self,
        repos: Repositories,
        privacy: PrivacyService,
        metrics: Metrics,
        clock: Clock,
        policy: RetentionPolicy,
        *,
        batch: int = BATCH,
    ) -> None:
        self.repos = repos
        self.privacy = privacy
        self.metrics = metrics
        self.clock = clock
        self.policy = policy
        self.batch = batch
        self.first_delay = FIRST_DELAY_SECONDS
        # Where the walks over customers and uploads go on next round. Rows there that
        # must stay would otherwise fill every batch and hide the ones behind them.
        self._customers_after: str | None = None
        self._uploads_after: str | None = None
        self._stopping = asyncio.Event()

    def cutoffs(self, now: datetime) -> Cutoffs:
        policy = self.policy
        return Cutoffs(
            closed_ticket=now - timedelta(days=policy.closed_ticket_days),
            draft=now - timedelta(days=policy.draft_days),
            refusal_day=(now - timedelta(days=policy.refusal_days)).date().isoformat(),
            audit=now - timedelta(days=policy.audit_days),
            inbound=now - INBOUND_KEEP,
            lock=now - LOCK_GRACE,
            upload=now - UPLOAD_GRACE,
            now=now,
        )

    # ------------------------------------------------------------ the dry run

    async def plan(self, now: datetime) -> RetentionReport:
        """What a run at `now` would remove, per rule, without a batch limit. Changes nothing.

        `pending` counts the clean-up waiting to be tried; a run counts what it finished."""
        c = self.cutoffs(now)
        repos = self.repos
        drafts = set(await repos.conversations.idle(c.draft))
        closed = set(await repos.tickets.stale_closed(c.closed_ticket))
        uploads = 0
        after: str | None = None
        while page := await repos.uploads.created_before(c.upload, after_id=after, limit=500):
            uploads += len(await self._unused_uploads(page, besides=drafts))
            after = page[-1]
        customers = 0
        after = None
        while page_of := await repos.customers.untouched(
            c.closed_ticket, after_id=after, limit=500
        ):
            for customer in page_of:
                customers += await self._expired(customer, c, anonymizing=closed, dropping=drafts)
            after = page_of[-1].id
        waiting = sum(len(r.pending) for r in await repos.privacy_requests.with_pending_work())
        waiting += len(await repos.privacy_requests.unfinished_erasures(now - ERASURE_RESUME_AFTER))
        done = {"state": PrivacyRequestState.DONE.value}
        counts = {
            "drafts": len(drafts),
            "uploads": uploads,
            "upload_tokens": await repos.upload_tokens.count_expired(now),
            "locks": await repos.locks.count_before("until", c.lock)
            + await repos.conversation_versions.count_before("until", c.lock),
            "closed_tickets": len(closed),
            "customers": customers,
            "refusals": await repos.refusals.count_before("day", c.refusal_day),
            "audit": await repos.audit.count_before("at", c.audit),
            "privacy_requests": await repos.privacy_requests.count_before(
                "done_at", c.audit, where=done
            ),
            "inbound_events": await repos.inbound.count_before("at", c.inbound),
            "pending": waiting,
        }
        return RetentionReport(counts=counts, dry_run=True)

    # ------------------------------------------------------------ a round

    async def run(self, now: datetime, *, dry_run: bool = False) -> RetentionReport:
        """One round at `now` if no other process is running one (else `busy`)."""
        if dry_run:
            return await self.plan(now)
        lock = await self.repos.locks.acquire(ROUND_LOCK, ROUND_TTL, now=now)
        if lock is None:
            self.metrics.retention_rounds.labels("busy").inc()
            return RetentionReport(busy=True)
        try:
            report = await self.sweep(now)
        finally:
            await self.repos.locks.release(lock)
        self.metrics.retention_rounds.labels("failed" if report.failed else "ok").inc()
        removed = {rule: count for rule, count in report.counts.items() if count}
        log.info("retention round", extra={"removed": removed, "failed": report.failed})
        return report

    async def drain(self, now: datetime) -> RetentionReport:
        """Rounds until no rule has more to do (the command line's run)."""
        total = RetentionReport()
        for _ in range(MAX_ROUNDS):
            report = await self.run(now)
            total.add(report)
            if report.busy or report.failed or not report.more:
                break
        return total

    async def sweep(self, now: datetime) -> RetentionReport:
        """One round of every rule, without the round lock (run() takes it). A rule that
        fails is logged and left for the next round; the others still run."""
        c = self.cutoffs(now)
        steps: dict[str, Step] = {
            "drafts": self._drafts,
            "uploads": self._uploads,
            "upload_tokens": self._upload_tokens,
            "locks": self._locks,
            "closed_tickets": self._closed_tickets,
            "customers": self._customers,
            "refusals": self._refusals,
            "audit": self._audit,
            "privacy_requests": self._privacy_requests,
            "inbound_events": self._inbound_events,
            "pending": self._pending,
        }
        report = RetentionReport()
        for rule, step in steps.items():
            try:
                count, more = await step(c)
            except DatabaseUnavailable:
                raise  # the rest would fail the same way; the next round tries again
            except Exception:
                log.exception("retention rule failed; retried next round", extra={"rule": rule})
                report.failed.append(rule)
                continue
            report.counts[rule] = count
            report.more = report.more or more
            if count:
                self.metrics.retention_removed.labels(rule).inc(count)
        return report

    # ------------------------------------------------------------ the rules

    async def _drafts(self, c: Cutoffs) -> tuple[int, bool]:
        ids = await self.repos.conversations.idle(c.draft, limit=self.batch)
        removed = 0
        for conversation_id in ids:
            removed += await self.repos.conversations.delete_if_idle(conversation_id, c.draft)
        return removed, len(ids) == self.batch and removed > 0

    async def _uploads(self, c: Cutoffs) -> tuple[int, bool]:
        page = await self.repos.uploads.created_before(
            c.upload, after_id=self._uploads_after, limit=self.batch
        )
        full = len(page) == self.batch
        self._uploads_after = page[-1] if full else None  # at the end: start again next time
        unused = await self._unused_uploads(page)
        removed = await self.repos.uploads.delete_created_before(unused, c.upload)
        return removed, full

    async def _unused_uploads(
        self, upload_ids: list[str], *, besides: Collection[str] = ()
    ) -> list[str]:
        """The uploads nothing refers to (drafts in `besides` aside).

        The drafts first, then tickets, then messages: the order a file's reference moves
        in (a ticket is filed before its draft is cleared), so a reference on its way is
        seen in one place or the next, never missed between two reads."""
        refs = [f"upload:{upload_id}" for upload_id in upload_ids]
        if not refs:
            return []
        used = await self.repos.conversations.file_refs_in_use(refs, besides=besides)
        used |= await self.repos.tickets.file_refs_in_use(refs)
        used |= await self.repos.messages.file_refs_in_use(refs)
        return [
            upload_id for upload_id, ref in zip(upload_ids, refs, strict=True) if ref not in used
        ]

    async def _upload_tokens(self, c: Cutoffs) -> tuple[int, bool]:
        return await self.repos.upload_tokens.purge_expired(c.now), False

    async def _locks(self, c: Cutoffs) -> tuple[int, bool]:
        more = False
        removed = 0
        for repository in (self.repos.locks, self.repos.conversation_versions):
            count = await repository.delete_before("until", c.lock, limit=self.batch)
            removed += count
            more = more or count == self.batch
        return removed, more

    async def _closed_tickets(self, c: Cutoffs) -> tuple[int, bool]:
        ids = await self.repos.tickets.stale_closed(c.closed_ticket, limit=self.batch)
        removed = 0
        for ticket_id in ids:
            removed += await self._anonymize(ticket_id, c)
        return removed, len(ids) == self.batch and removed > 0

    async def _anonymize(self, ticket_id: str, c: Cutoffs) -> bool:
        # The lock keeps two rounds from both anonymizing (and counting) one ticket; the
        # re-read, from anonymizing one that was reopened since it was listed. It is timed
        # by the round's clock, as the locks rule is.
        lock = await self.repos.locks.acquire(f"retention:ticket:{ticket_id}", ITEM_TTL, now=c.now)
        if lock is None:
            return False
        try:
            ticket = await self.repos.tickets.get(ticket_id)
            if (
                ticket is None
                or ticket.anonymized_at is not None
                or ticket.status not in CLOSED_STATUSES
                or ticket.updated_at >= c.closed_ticket
            ):
                return False
            await self.privacy.anonymize_ticket(ticket)
            return True
        finally:
            await self.repos.locks.release(lock)

    async def _customers(self, c: Cutoffs) -> tuple[int, bool]:
        page = await self.repos.customers.untouched(
            c.closed_ticket, after_id=self._customers_after, limit=self.batch
        )
        full = len(page) == self.batch
        self._customers_after = page[-1].id if full else None
        removed = 0
        for customer in page:
            if await self._expired(customer, c):
                removed += await self._erase(customer.id, c)
        return removed, full

    async def _erase(self, customer_id: str, c: Cutoffs) -> bool:
        lock = await self.repos.locks.acquire(
            f"retention:customer:{customer_id}", ITEM_TTL, now=c.now
        )
        if lock is None:
            return False
        try:
            customer = await self.repos.customers.get(customer_id)
            if customer is None or not await self._expired(customer, c):
                return False
            try:
                await self.privacy.erase(customer, by="system:retention", wait=timedelta(0))
            except Busy:
                return False  # being erased right now by another run: it does the work
            return True
        finally:
            await self.repos.locks.release(lock)

    async def _expired(
        self,
        customer: Customer,
        c: Cutoffs,
        *,
        anonymizing: Collection[str] = (),
        dropping: Collection[str] = (),
    ) -> bool:
        """No ticket still holds their personal data, no dialogue, and nothing done for the
        closed-ticket period. The dry run counts tickets in `anonymizing` and drafts in
        `dropping` as already gone, as they are by the time a round gets here."""
        cutoff = c.closed_ticket
        if customer.created_at >= cutoff or customer.updated_at >= cutoff:
            return False
        tickets = await self.repos.tickets.with_personal_data(customer.id)
        if any(ticket_id not in anonymizing for ticket_id in tickets):
            return False
        key = conversation_key(customer.channel.value, customer.external_id)
        if key not in dropping and await self.repos.conversations.get(key) is not None:
            return False
        for last in (
            await self.repos.messages.last_at(customer.id),
            await self.repos.consents.last_at(customer.id),
        ):
            if last is not None and last >= cutoff:
                return False
        return True

    async def _refusals(self, c: Cutoffs) -> tuple[int, bool]:
        removed = await self.repos.refusals.delete_before("day", c.refusal_day, limit=self.batch)
        return removed, removed == self.batch

    async def _audit(self, c: Cutoffs) -> tuple[int, bool]:
        removed = await self.repos.audit.delete_before("at", c.audit, limit=self.batch)
        return removed, removed == self.batch

    async def _privacy_requests(self, c: Cutoffs) -> tuple[int, bool]:
        # Open requests stay whatever their age: they are not answered yet.
        removed = await self.repos.privacy_requests.delete_before(
            "done_at",
            c.audit,
            where={"state": PrivacyRequestState.DONE.value},
            limit=self.batch,
        )
        return removed, removed == self.batch

    async def _inbound_events(self, c: Cutoffs) -> tuple[int, bool]:
        removed = await self.repos.inbound.delete_before("at", c.inbound, limit=self.batch)
        return removed, removed == self.batch

    async def _pending(self, c: Cutoffs) -> tuple[int, bool]:
        return await self.privacy.finish_pending(), False

    # ------------------------------------------------------------ in the service

    async def run_periodically(
        self, interval_seconds: float, *, ready: asyncio.Event | None = None
    ) -> None:
        """A round shortly after `ready`, then every `interval_seconds` (sooner while a
        backlog lasts) until stop(). A failed round is logged and tried again next time.
        Besides, every CLAIM_SWEEP_SECONDS, the dialogues' version claims that ran out
        are swept (in every process: one statement, and the claims come at the rate of
        dialogue steps, too many to leave to an hourly round)."""
        if ready is not None:
            await ready.wait()
        loop = asyncio.get_running_loop()
        next_round = loop.time() + self.first_delay
        next_sweep = loop.time() + CLAIM_SWEEP_SECONDS
        while not await self._stopped_within(min(next_round, next_sweep) - loop.time()):
            if loop.time() >= next_sweep:
                next_sweep = loop.time() + CLAIM_SWEEP_SECONDS
                await self._sweep_claims()
            if loop.time() < next_round:
                continue
            next_round = loop.time() + interval_seconds
            try:
                report = await self.run(self.clock())
            except Exception:
                log.exception("retention round failed; retried next round")
                self.metrics.retention_rounds.labels("failed").inc()
                continue
            if report.more and report.total:
                next_round = loop.time() + min(interval_seconds, BACKLOG_PAUSE_SECONDS)

    async def _sweep_claims(self) -> None:
        """Never ends the job: a sweep that fails is tried again next time."""
        try:
            await self.repos.conversation_versions.sweep(self.clock())
        except DatabaseUnavailable:
            log.info("version claims not swept: database unavailable; next time")
        except Exception:
            log.exception("version claims not swept; next time")

    def stop(self) -> None:
        """The periodic task ends after the round in hand."""
        self._stopping.set()

    async def _stopped_within(self, seconds: float) -> bool:
        """Whether stop() was called by the end of `seconds` (at once if it was already:
        with no time left, asyncio's wait_for times out even on a set event)."""
        if self._stopping.is_set():
            return True
        if seconds <= 0:
            return False
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return self._stopping.is_set()
        return True


__all__ = ["RULES", "RetentionPolicy", "RetentionReport", "RetentionService"]
