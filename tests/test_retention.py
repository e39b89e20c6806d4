"""The retention job (C4.3: "retention periods are configuration; expiry is enforced by a
job, not by hand"), with a fixed clock on the real database: each rule one day before its
period ends (kept) and one day after (removed), the dry run, idempotence, concurrency,
and the job running inside the service."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from pymongo.errors import OperationFailure

from bot.app import Container, build_app
from bot.domain.models import (
    Attachment,
    AuditEntry,
    Author,
    Category,
    Channel,
    ConsentPurpose,
    ConsentRecord,
    Conversation,
    Customer,
    Direction,
    Message,
    PrivacyRequest,
    PrivacyRequestKind,
    PrivacyRequestState,
    Ticket,
    TicketStatus,
    new_id,
)
from bot.domain.privacy import conversation_key
from bot.services import retention as retention_module
from bot.services.retention import RULES, RetentionReport, RetentionService
from bot.storage import conversations
from bot.storage.uploads import Upload
from tests.services.chat import Chat
from tests.support import FixedClock, eventually

CLOSED = [TicketStatus.RESOLVED, TicketStatus.ADOPTED, TicketStatus.DECLINED, TicketStatus.CLOSED]
OPEN = [s for s in TicketStatus if s not in CLOSED]


# ------------------------------------------------------------ data, stored directly


async def a_customer(
    container: Container, user: str, at: datetime, channel: Channel = Channel.TELEGRAM
) -> Customer:
    customer = Customer(
        channel=channel,
        external_id=user,
        locale="en",
        email=f"{user}@example.com",
        created_at=at,
        updated_at=at,
    )
    return await container.repos.customers.insert(customer)


async def a_ticket(
    container: Container,
    customer: Customer,
    at: datetime,
    status: TicketStatus = TicketStatus.CLOSED,
    attachments: list[Attachment] | None = None,
) -> Ticket:
    ticket = Ticket(
        customer_id=customer.id,
        channel=customer.channel,
        locale="en",
        category=Category.LOGISTICS,
        rating=2,
        text=f"{customer.external_id}: the parcel came late",
        attachments=attachments or [],
        status=status,
        created_at=at,
        updated_at=at,
        response_due=at + timedelta(days=3),
    )
    return (await container.repos.tickets.add(ticket, prefix="FB", year=at.year)).item


async def a_consent(container: Container, customer: Customer, at: datetime) -> None:
    record = ConsentRecord(
        customer_id=customer.id,
        purpose=ConsentPurpose.PROCESSING,
        granted=True,
        notice_version="test",
        text_hash="0" * 64,
        locale="en",
        channel=customer.channel,
        at=at,
    )
    await container.repos.consents.append(record)


async def a_draft(
    container: Container,
    customer: Customer | None,
    at: datetime,
    *,
    user: str = "draft",
    **answers: Any,
) -> str:
    key = (
        conversation_key(customer.channel.value, customer.external_id)
        if customer is not None
        else conversation_key(Channel.WIDGET.value, user)
    )
    conversation = Conversation(
        id=key,
        locale="en",
        step="text",
        answers={
            "category": "price",
            "text": "my words",
            "contact": {"phone": "+8613800000000"},
            **answers,
        },
        updated_at=at,
        version=1,  # as the dialogue stores it (save), written `at`
        epoch=new_id(),
    )
    await container.repos.conversations.insert(conversation)
    return key


async def an_upload(container: Container, at: datetime) -> str:
    content = b"\x89PNG not really"
    upload = Upload(
        owner="owner-key",
        name="receipt.png",
        mime_type="image/png",
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
        created_at=at,
    )
    return (await container.repos.uploads.insert(upload)).id


def attached(upload_id: str) -> Attachment:
    return Attachment(kind="photo", file_ref=f"upload:{upload_id}", name="receipt.png")


async def a_done_request(container: Container, at: datetime) -> PrivacyRequest:
    request = PrivacyRequest(
        kind=PrivacyRequestKind.EXPORT,
        channel=Channel.EMAIL,
        by="staff-1",
        opened_at=at,
        due_at=at + timedelta(days=15),
        state=PrivacyRequestState.DONE,
        done_at=at,
    )
    return await container.repos.privacy_requests.add(request)


async def exists(container: Container, collection: str, doc_id: str) -> bool:
    return await container.database.db[collection].find_one({"_id": doc_id}) is not None


async def run_at(container: Container, clock: FixedClock, **offset: float) -> RetentionReport:
    """A round with the clock `offset` after the data's time (the fixture's start)."""
    clock.now = START + timedelta(**offset)
    report = await container.retention.run(clock())
    assert not report.busy
    assert not report.failed
    return report


START = FixedClock().now


# ------------------------------------------------------------ the configurable rules


async def test_c4_3_closed_ticket_personal_data_expires(
    container: Container, clock: FixedClock
) -> None:
    """Filed and closed through the services, as in life; anonymized after 730 days."""
    chat = Chat(container, "501", locale="en")
    await chat.happy_path("The parcel arrived two days late.")
    (doc,) = await container.repos.tickets.collection.find({}).to_list()
    ticket_id = str(doc["_id"])
    await container.tickets.change_status(ticket_id, TicketStatus.RESOLVED, actor="staff-1")
    closed = await container.tickets.change_status(
        ticket_id, TicketStatus.CLOSED, actor="staff-1", message="Sorry, and thank you."
    )
    await container.delivery.drain()
    assert await container.repos.messages.for_ticket(ticket_id)

    report = await run_at(container, clock, days=729)
    assert report.counts["closed_tickets"] == 0
    kept = await container.tickets.get(ticket_id)
    assert kept.text == "The parcel arrived two days late."
    assert kept.anonymized_at is None

    report = await run_at(container, clock, days=731)
    assert report.counts["closed_tickets"] == 1
    gone = await container.tickets.get(ticket_id)
    assert gone.anonymized_at == clock()
    assert gone.text == ""
    assert all(event.detail is None for event in gone.events)
    assert await container.repos.messages.for_ticket(ticket_id) == []
    # What statistics need stays.
    assert (gone.reference, gone.category, gone.rating, gone.status) == (
        closed.reference,
        closed.category,
        closed.rating,
        TicketStatus.CLOSED,
    )
    assert (gone.created_at, gone.response_due, gone.first_response_at) == (
        closed.created_at,
        closed.response_due,
        closed.first_response_at,
    )


async def test_c4_3_every_closed_status_expires_and_keeps_its_anonymous_fields(
    container: Container, clock: FixedClock
) -> None:
    customer = await a_customer(container, "600", START)
    upload_id = await an_upload(container, START)
    tickets = {
        status: await a_ticket(container, customer, START, status, [attached(upload_id)])
        for status in CLOSED
    }
    assert (await run_at(container, clock, days=729)).counts["closed_tickets"] == 0
    assert (await run_at(container, clock, days=731)).counts["closed_tickets"] == len(CLOSED)
    for status, before in tickets.items():
        after = await container.tickets.get(before.id)
        assert after.anonymized_at is not None
        assert (after.text, after.attachments, after.corrections) == ("", [], [])
        assert after.status is status
        kept = ("reference", "channel", "category", "rating", "created_at", "response_due")
        assert [getattr(after, name) for name in kept] == [getattr(before, name) for name in kept]
    assert not await exists(container, "uploads", upload_id)


async def test_c4_3_open_tickets_are_never_touched(container: Container, clock: FixedClock) -> None:
    customer = await a_customer(container, "700", START)
    upload_id = await an_upload(container, START)
    tickets = [
        await a_ticket(container, customer, START, status, [attached(upload_id)]) for status in OPEN
    ]
    report = await run_at(container, clock, days=3650)
    assert report.counts["closed_tickets"] == report.counts["customers"] == 0
    assert report.counts["uploads"] == 0
    for ticket in tickets:
        after = await container.tickets.get(ticket.id)
        assert after.anonymized_at is None
        assert after.text == ticket.text
        assert after.attachments == ticket.attachments
    assert await container.repos.customers.get(customer.id) is not None
    assert await exists(container, "uploads", upload_id)


async def test_c4_3_abandoned_drafts_expire(container: Container, clock: FixedClock) -> None:
    old = await a_draft(container, None, START, user="old")
    recent = await a_draft(container, None, START + timedelta(days=10), user="recent")
    assert (await run_at(container, clock, days=29)).counts["drafts"] == 0
    assert await exists(container, "conversations", old)
    assert (await run_at(container, clock, days=31)).counts["drafts"] == 1
    assert not await exists(container, "conversations", old)
    assert await exists(container, "conversations", recent)


async def test_c4_3_customers_with_nothing_left_expire(
    container: Container, clock: FixedClock
) -> None:
    nothing = await a_customer(container, "801", START)  # consented, never filed
    await a_consent(container, nothing, START)
    anonymized = await a_customer(container, "802", START)  # their one ticket already went
    ticket = await a_ticket(container, anonymized, START - timedelta(days=800))
    await container.privacy.anonymize_ticket(ticket)
    active = await a_customer(container, "803", START)  # a consent given later
    await a_consent(container, active, START + timedelta(days=100))
    talking = await a_customer(container, "804", START)  # a dialogue under way
    await a_draft(container, talking, START + timedelta(days=720))
    open_ticket = await a_customer(container, "805", START)
    await a_ticket(container, open_ticket, START, TicketStatus.IN_PROGRESS)

    assert (await run_at(container, clock, days=729)).counts["customers"] == 0
    assert await container.repos.customers.get(nothing.id) is not None
    report = await run_at(container, clock, days=731)
    assert report.counts["customers"] == 2
    for gone in (nothing, anonymized):
        assert await container.repos.customers.get(gone.id) is None
        assert await container.repos.consents.history(gone.id) == []
    for kept in (active, talking, open_ticket):
        assert await container.repos.customers.get(kept.id) is not None
    erasures = [
        r
        for r in await container.repos.privacy_requests.recent()
        if r.kind is PrivacyRequestKind.ERASE
    ]
    assert {r.by for r in erasures} == {"system:retention"}
    assert all(r.state is PrivacyRequestState.DONE and r.customer_id is None for r in erasures)


async def test_c4_3_refused_consent_counts_expire(container: Container, clock: FixedClock) -> None:
    await container.repos.refusals.record(START.date(), Channel.TELEGRAM)
    await container.repos.refusals.record(START.date(), Channel.WIDGET)
    later = (START + timedelta(days=10)).date()
    await container.repos.refusals.record(later, Channel.WIDGET)
    assert (await run_at(container, clock, days=364)).counts["refusals"] == 0
    assert (await run_at(container, clock, days=366)).counts["refusals"] == 2
    assert await container.repos.refusals.count(START.date()) == 0
    assert await container.repos.refusals.count(later) == 1


async def test_c4_3_audit_entries_and_answered_requests_expire(
    container: Container, clock: FixedClock
) -> None:
    entry = await container.repos.audit.append(
        AuditEntry(
            at=START,
            actor="staff-1",
            action="customer.view",
            target_type="customer",
            target_id="c1",
        )
    )
    newer = await container.repos.audit.append(
        AuditEntry(
            at=START + timedelta(days=5),
            actor="staff-1",
            action="customer.view",
            target_type="customer",
            target_id="c1",
        )
    )
    done = await a_done_request(container, START)
    still_open = await container.repos.privacy_requests.add(
        PrivacyRequest(
            kind=PrivacyRequestKind.ERASE,
            channel=Channel.PHONE,
            by="staff-1",
            opened_at=START,
            due_at=START + timedelta(days=15),
        )
    )
    report = await run_at(container, clock, days=1094)
    assert report.counts["audit"] == report.counts["privacy_requests"] == 0
    report = await run_at(container, clock, days=1096)
    assert report.counts["audit"] == report.counts["privacy_requests"] == 1
    assert not await exists(container, "audit", entry.id)
    assert await exists(container, "audit", newer.id)
    assert not await exists(container, "privacy_requests", done.id)
    assert await exists(container, "privacy_requests", still_open.id)  # not answered yet


# ------------------------------------------------------------ housekeeping


async def test_inbound_event_keys_go_after_30_days(container: Container, clock: FixedClock) -> None:
    await container.repos.inbound.done("telegram:1:100", at=START)
    await container.repos.inbound.done("telegram:1:101", at=START + timedelta(days=5))
    assert (await run_at(container, clock, days=29)).counts["inbound_events"] == 0
    assert (await run_at(container, clock, days=31)).counts["inbound_events"] == 1
    assert not await container.repos.inbound.seen("telegram:1:100")
    assert await container.repos.inbound.seen("telegram:1:101")


async def test_only_locks_expired_for_over_an_hour_go(
    container: Container, clock: FixedClock
) -> None:
    locks = container.repos.locks
    old = await locks.acquire("ticket:a", timedelta(minutes=1), now=START)
    young = await locks.acquire("ticket:b", timedelta(minutes=1), now=START + timedelta(minutes=5))
    assert old is not None
    assert young is not None
    assert (await run_at(container, clock, minutes=60)).counts["locks"] == 0
    assert (await run_at(container, clock, minutes=62)).counts["locks"] == 1
    assert not await exists(container, "locks", old.id)
    assert await exists(container, "locks", young.id)


async def test_expired_upload_tokens_go(container: Container, clock: FixedClock) -> None:
    tokens = container.repos.upload_tokens
    spent = await tokens.issue("owner", timedelta(minutes=5), now=START)
    fresh = await tokens.issue("owner", timedelta(minutes=5), now=START + timedelta(minutes=4))
    assert (await run_at(container, clock, minutes=6)).counts["upload_tokens"] == 1
    assert await tokens.redeem(spent, now=START) is None
    assert await tokens.redeem(fresh, now=START + timedelta(minutes=6)) is not None


async def test_uploads_nothing_refers_to_go_after_a_day(
    container: Container, clock: FixedClock
) -> None:
    customer = await a_customer(container, "900", START)
    in_ticket, in_message, in_draft, orphan = [await an_upload(container, START) for _ in range(4)]
    young_orphan = await an_upload(container, START + timedelta(hours=20))
    await a_ticket(container, customer, START, TicketStatus.IN_PROGRESS, [attached(in_ticket)])
    message = Message(
        customer_id=customer.id,
        channel=customer.channel,
        direction=Direction.INBOUND,
        author=Author.CUSTOMER,
        attachments=[attached(in_message)],
        created_at=START,
    )
    await container.repos.messages.append(message)
    draft = [attached(in_draft).model_dump()]
    await a_draft(container, customer, START, attachments=draft)

    assert (await run_at(container, clock, hours=23)).counts["uploads"] == 0
    assert (await run_at(container, clock, hours=25)).counts["uploads"] == 1
    assert not await exists(container, "uploads", orphan)
    for kept in (in_ticket, in_message, in_draft, young_orphan):
        assert await exists(container, "uploads", kept)


async def test_a_staff_topic_an_anonymization_could_not_delete_goes_later(
    container: Container, clock: FixedClock
) -> None:
    customer = await a_customer(container, "950", START)
    ticket = await a_ticket(container, customer, START)
    await container.repos.tickets.collection.update_one(
        {"_id": ticket.id}, {"$set": {"telegram_topic_chat_id": -100, "telegram_topic_id": 7}}
    )
    deleted: list[tuple[int, int]] = []
    telegram_up = False

    async def delete_topic(chat_id: int, topic_id: int) -> bool:
        if telegram_up:
            deleted.append((chat_id, topic_id))
        return telegram_up

    container.privacy.topic_eraser = delete_topic
    report = await run_at(container, clock, days=731)
    assert (report.counts["closed_tickets"], report.counts["pending"]) == (1, 0)
    telegram_up = True
    report = await run_at(container, clock, days=731, hours=1)
    assert report.counts["pending"] == 1
    assert deleted == [(-100, 7)]
    assert (await run_at(container, clock, days=731, hours=2)).counts["pending"] == 0


# ------------------------------------------------------------ the job as a whole


async def populate(container: Container) -> None:
    """One of everything that expires, and things that must stay, at START."""
    leaving = await a_customer(container, "1001", START)  # their only ticket is closed
    upload_id = await an_upload(container, START)
    await a_ticket(container, leaving, START, TicketStatus.CLOSED, [attached(upload_id)])
    await a_consent(container, leaving, START)
    idle = await a_customer(container, "1002", START)  # only an abandoned draft
    draft_upload = await an_upload(container, START)
    await a_draft(container, idle, START, attachments=[attached(draft_upload).model_dump()])
    staying = await a_customer(container, "1003", START)
    await a_ticket(container, staying, START, TicketStatus.WAITING_FOR_CUSTOMER)
    await an_upload(container, START)  # nothing refers to it
    await container.repos.refusals.record(START.date(), Channel.WIDGET)
    await container.repos.audit.append(
        AuditEntry(at=START, actor="system", action="x", target_type="ticket", target_id="t")
    )
    await a_done_request(container, START)
    await container.repos.inbound.done("widget:abc", at=START)
    await container.repos.locks.acquire("delivery:m1", timedelta(seconds=30), now=START)
    await container.repos.upload_tokens.issue("owner", timedelta(minutes=5), now=START)


async def snapshot(container: Container) -> dict[str, list[dict[str, Any]]]:
    db = container.database.db
    return {
        name: await db[name].find({}).sort("_id", 1).to_list()
        for name in sorted(await db.list_collection_names())
    }


LATER = {"days": 4 * 365}  # past every period
LATE = timedelta(hours=1)  # a claim that ran out this long ago is swept


@pytest.fixture
def claims_on_the_rounds_clock(clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """A draft is deleted as a write of its next version, whose claim runs out 30 s after
    the repository's clock (the wall clock); in a round years ahead of it, that claim
    would be an hour past its time already, and removed by the same round."""
    monkeypatch.setattr(conversations, "utcnow", clock)


async def test_c4_3_dry_run_changes_nothing_and_counts_what_the_run_removes(
    container: Container, clock: FixedClock, claims_on_the_rounds_clock: None
) -> None:
    await populate(container)
    clock.now = START + timedelta(**LATER)
    before = await snapshot(container)
    planned = await container.retention.run(clock(), dry_run=True)
    assert planned.dry_run
    assert await snapshot(container) == before
    expected = dict.fromkeys(RULES, 1) | {"customers": 2, "uploads": 2, "pending": 0}
    assert planned.counts == expected

    done = await run_at(container, clock, **LATER)
    assert done.counts == planned.counts
    assert (await container.retention.run(clock(), dry_run=True)).total == 0


async def test_c4_3_a_second_run_removes_nothing_more(
    container: Container, clock: FixedClock
) -> None:
    await populate(container)
    assert (await run_at(container, clock, **LATER)).total > 0
    after_first = await snapshot(container)
    assert (await run_at(container, clock, **LATER)).total == 0
    assert await snapshot(container) == after_first


async def test_c4_3_batches_are_bounded_and_later_rounds_finish(
    container: Container, clock: FixedClock
) -> None:
    container.retention.batch = 2
    for n in range(5):
        await container.repos.audit.append(
            AuditEntry(at=START, actor="system", action="x", target_type="t", target_id=str(n))
        )
        customer = await a_customer(container, f"11{n}", START)
        await a_consent(container, customer, START)
    first = await run_at(container, clock, **LATER)
    assert (first.counts["audit"], first.counts["customers"], first.more) == (2, 2, True)
    rest = await container.retention.drain(clock())
    assert (rest.counts["audit"], rest.counts["customers"], rest.more) == (3, 3, False)


async def test_c4_3_concurrent_runs_neither_fail_nor_double_count(
    container: Container, clock: FixedClock, claims_on_the_rounds_clock: None
) -> None:
    await populate(container)
    clock.now = START + timedelta(**LATER)
    planned = await container.retention.plan(clock())
    other_process = RetentionService(
        container.repos, container.privacy, container.metrics, clock, container.retention.policy
    )
    # Two processes at once: one takes the round; the other finds it busy (or, if it comes
    # after, nothing left to do).
    first, second = await asyncio.gather(
        container.retention.run(clock()), other_process.run(clock())
    )
    assert not first.failed
    assert not second.failed
    assert {k: first.counts[k] + second.counts[k] for k in RULES} == planned.counts
    assert (await container.retention.plan(clock())).total == 0


async def test_c4_3_each_step_is_safe_even_without_the_round_lock(
    container: Container, clock: FixedClock
) -> None:
    """If two rounds did overlap (a lock outlived), every record is removed once."""
    await populate(container)
    clock.now = START + timedelta(**LATER)
    planned = await container.retention.plan(clock())
    other_process = RetentionService(
        container.repos, container.privacy, container.metrics, clock, container.retention.policy
    )
    first, second = await asyncio.gather(
        container.retention.sweep(clock()), other_process.sweep(clock())
    )
    assert not first.failed
    assert not second.failed
    both = {k: first.counts[k] + second.counts[k] for k in RULES}
    # The short locks other code takes meanwhile (a ticket's, a dialogue's) are stamped
    # with the real time, years before this fixed clock, so one round may also clear one
    # the other holds; in the service both clocks are the same and that cannot happen.
    assert both.pop("locks") >= planned.counts.pop("locks")
    assert both == planned.counts
    assert (await container.retention.plan(clock())).total == 0


# ------------------------------------------------------------ in the service


def sample(container: Container, name: str, **labels: str) -> float:
    value = container.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_c4_3_the_service_runs_the_job_and_retries_a_failed_round(
    container: Container, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await container.repos.refusals.record((clock() - timedelta(days=400)).date(), Channel.WIDGET)
    retention = container.retention
    retention.first_delay = 0
    real_sweep = retention.sweep
    calls = 0

    async def fails_once(now: datetime) -> RetentionReport:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database hiccup")
        return await real_sweep(now)

    monkeypatch.setattr(retention, "sweep", fails_once)
    # The first round fails; a short interval brings the next one soon.
    task = asyncio.create_task(retention.run_periodically(0.05))

    async def removed() -> bool | None:
        return await container.repos.refusals.count_before("day", "9999") == 0 or None

    await eventually(removed, "the retention job to remove the old refusal")
    retention.stop()
    await task
    assert sample(container, "feedback_retention_rounds_total", outcome="failed") == 1
    assert sample(container, "feedback_retention_rounds_total", outcome="ok") >= 1
    assert sample(container, "feedback_retention_removed_total", rule="refusals") == 1


async def test_version_claims_are_swept_between_rounds_and_a_failed_sweep_is_tried_again(
    container: Container, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention_module, "CLAIM_SWEEP_SECONDS", 0.05)
    claims = container.repos.conversation_versions
    await claims.collection.insert_one({"_id": "e@2", "owner": "o", "until": clock() - LATE})
    retention = container.retention
    retention.first_delay = 3600  # no round in this test: the sweeps run by themselves
    real_sweep = claims.sweep
    failures = [OperationFailure("a server error")]

    async def fails_once(now: datetime) -> int:
        if failures:
            raise failures.pop()
        return await real_sweep(now)

    monkeypatch.setattr(claims, "sweep", fails_once)
    task = asyncio.create_task(retention.run_periodically(3600))

    async def swept() -> bool | None:
        return await claims.collection.count_documents({}) == 0 or None

    await eventually(swept, "the claim that ran out to be swept")
    assert not failures
    assert not task.done()  # the failed sweep did not end the job
    retention.stop()
    await asyncio.wait_for(task, 2)


async def test_stop_is_heard_after_a_round_longer_than_the_interval(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    retention = container.retention
    retention.first_delay = 0
    rounds = 0

    async def slow_round(now: datetime) -> RetentionReport:
        nonlocal rounds
        rounds += 1
        retention.stop()  # asked to stop while a round runs past the interval
        await asyncio.sleep(0.2)
        return RetentionReport()

    monkeypatch.setattr(retention, "sweep", slow_round)
    await asyncio.wait_for(retention.run_periodically(0.01), 2)
    assert rounds == 1


async def test_c4_3_the_job_starts_with_the_app(container: Container, clock: FixedClock) -> None:
    await container.repos.refusals.record((clock() - timedelta(days=400)).date(), Channel.WIDGET)
    container.retention.first_delay = 0
    runner = web.AppRunner(build_app(container))
    await runner.setup()  # starts the background tasks, as serve() does
    try:

        async def removed() -> bool | None:
            return await container.repos.refusals.count_before("day", "9999") == 0 or None

        await eventually(removed, "the service's retention job to remove the old refusal")
    finally:
        await runner.cleanup()
    assert sample(container, "feedback_retention_removed_total", rule="refusals") == 1


async def test_a_customer_being_erased_elsewhere_does_not_fail_the_round(
    container: Container, clock: FixedClock
) -> None:
    """A customer due for erasure whose erasure another run had in hand (staff, in the
    console): the rule waited for it, failed, and left the rest of its page for later."""
    first = await a_customer(container, "901", START)
    second = await a_customer(container, "902", START)
    for customer in (first, second):
        await a_consent(container, customer, START)
    busy, other = sorted((first, second), key=lambda c: c.id)  # the page goes by id
    clock.now = START + timedelta(days=731)
    running = await container.repos.locks.acquire(
        f"erasure:{busy.id}", timedelta(minutes=2), now=clock()
    )
    assert running is not None
    report = await container.retention.run(clock())
    assert report.failed == []
    assert await container.repos.customers.get(other.id) is None  # erased this round
