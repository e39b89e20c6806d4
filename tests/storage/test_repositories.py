"""Repositories against the real wire server: round trips, idempotency, clear errors."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.domain.models import (
    Author,
    Category,
    Channel,
    ConsentPurpose,
    ConsentRecord,
    Conversation,
    Customer,
    Direction,
    Message,
    Staff,
    Ticket,
    TicketStatus,
    TimelineEvent,
    utcnow,
)
from bot.domain.privacy import conversation_key
from bot.storage import Database, DatabaseUnavailable, Repositories, conversations
from bot.storage.conversations import CLAIM_GRACE, READ_FRESH, ConcurrentUpdate
from bot.storage.database import WriteNotSent
from bot.storage.embedded import free_port
from bot.storage.locks import Busy, Claim, claim_once
from tests.support import close_abandoned_sockets

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def make_ticket(customer_id: str, **extra: object) -> Ticket:
    return Ticket(
        customer_id=customer_id,
        channel=Channel.TELEGRAM,
        locale="en",
        category=Category.PRICE,
        rating=2,
        text="Too expensive <script>alert(1)</script> {'$where': 'sleep(1000)'}",
        created_at=NOW,
        updated_at=NOW,
        response_due=NOW + timedelta(days=3),
        **extra,
    )


async def test_customer_get_or_create_is_idempotent(repos: Repositories) -> None:
    first = await repos.customers.get_or_create(Channel.TELEGRAM, "1001", "en")
    again = await repos.customers.get_or_create(Channel.TELEGRAM, "1001", "zh_CN")
    assert again.id == first.id
    assert again.locale == "en"  # the stored record, not the second caller's guess
    other = await repos.customers.get_or_create(Channel.WIDGET, "1001", "en")
    assert other.id != first.id  # one person per channel identity
    loaded = await repos.customers.get(first.id)
    assert loaded is not None
    assert loaded.created_at.tzinfo is not None  # timezone-aware everywhere


async def test_concurrent_first_contacts_make_one_customer(repos: Repositories) -> None:
    results = await asyncio.gather(
        *(repos.customers.get_or_create(Channel.WIDGET, "visitor-1", "en") for _ in range(10))
    )
    assert len({c.id for c in results}) == 1
    assert await repos.customers.collection.count_documents({}) == 1


async def test_a_customer_is_found_by_the_key_of_their_identity(repos: Repositories) -> None:
    keys = repos.customer_keys
    assert await keys.backfill(repos.customers) == 0  # nothing stored yet: nothing to key
    assert keys.complete
    customer = await repos.customers.get_or_create(Channel.TELEGRAM, "2001", "en")
    assert await keys.customer_id(Channel.TELEGRAM, "2001") == customer.id
    assert await keys.customer_id(Channel.WIDGET, "2001") is None
    found = await repos.customers.find(Channel.TELEGRAM, "2001")
    assert found is not None
    assert found.id == customer.id
    # The key holds a hash, not the channel's user id (the customer record is its one place).
    (key,) = await keys.collection.find({"customer_id": customer.id}).to_list()
    assert "2001" not in str(key)
    # A customer without a key (the process died between the two writes) is not found
    # once all are keyed, and the next get_or_create keys them again, as the same customer.
    await keys.forget(customer)
    assert await repos.customers.find(Channel.TELEGRAM, "2001") is None
    again = await repos.customers.get_or_create(Channel.TELEGRAM, "2001", "en")
    assert again.id == customer.id
    assert await keys.customer_id(Channel.TELEGRAM, "2001") == customer.id
    # Deleting the customer deletes their key.
    assert await repos.customers.delete(customer)
    assert await keys.customer_id(Channel.TELEGRAM, "2001") is None
    assert await repos.customers.find(Channel.TELEGRAM, "2001") is None


async def test_customers_stored_before_keys_are_found_and_keyed_at_start_up(
    database: Database,
) -> None:
    before = Repositories.create(database)  # a process started before the backfill
    stored = [Customer(channel=Channel.WIDGET, external_id=f"v-{n}", locale="en") for n in range(7)]
    await before.customers.collection.insert_many([before.customers._dump(c) for c in stored])
    found = await before.customers.find(Channel.WIDGET, "v-3")  # by a search, meanwhile
    assert found is not None
    assert found.id == stored[3].id

    starting = Repositories.create(database)
    await starting.customer_keys.collection.insert_one(  # keyed by get_or_create already
        {"_id": conversation_key("widget", "v-0"), "customer_id": stored[0].id}
    )
    assert await starting.customer_keys.backfill(starting.customers) == 6
    for customer in stored:
        key = await starting.customer_keys.customer_id(Channel.WIDGET, customer.external_id)
        assert key == customer.id
    assert await Repositories.create(database).customer_keys.backfill(starting.customers) == 0


async def test_ticket_round_trip_keeps_hostile_text_inert(repos: Repositories) -> None:
    ticket = (await repos.tickets.add(make_ticket("c1"), prefix="FB", year=2026)).item
    loaded = await repos.tickets.by_reference("FB-2026-000001")
    assert loaded is not None
    assert loaded.model_dump() == ticket.model_dump()
    assert "<script>" in loaded.text  # stored as text; rendering escapes it


async def test_ticket_flow_id_is_an_idempotency_key(repos: Repositories) -> None:
    first = await repos.tickets.add(make_ticket("c1", flow_id="flow-1"), prefix="FB", year=2026)
    second = await repos.tickets.add(make_ticket("c1", flow_id="flow-1"), prefix="FB", year=2026)
    assert first.created
    assert not second.created
    assert second.item.reference == "FB-2026-000001"
    assert await repos.tickets.collection.count_documents({}) == 1


async def test_ticket_transition_is_conditional(repos: Repositories) -> None:
    ticket = (await repos.tickets.add(make_ticket("c1"), prefix="FB", year=2026)).item
    event = TimelineEvent(
        kind="status",
        actor="system",
        from_status=TicketStatus.RECEIVED,
        to_status=TicketStatus.ACKNOWLEDGED,
    )
    assert await repos.tickets.transition(ticket.id, TicketStatus.RECEIVED, event)
    # A second writer that still believes the ticket is "received" changes nothing.
    assert not await repos.tickets.transition(ticket.id, TicketStatus.RECEIVED, event)
    loaded = await repos.tickets.get(ticket.id)
    assert loaded is not None
    assert loaded.status is TicketStatus.ACKNOWLEDGED
    assert len(loaded.events) == 1


async def test_message_idempotency_key_stores_one_copy(repos: Repositories) -> None:
    message = Message(
        customer_id="c1",
        channel=Channel.WIDGET,
        direction=Direction.INBOUND,
        author=Author.CUSTOMER,
        text="hello",
        idempotency_key="widget:client-msg-1",
    )
    first = await repos.messages.append(message)
    resend = await repos.messages.append(message.model_copy(update={"id": "other-id"}))
    assert first.created
    assert not resend.created  # reported, no exception escapes
    assert resend.item.id == first.item.id
    assert await repos.messages.collection.count_documents({}) == 1


async def test_messages_are_numbered_per_customer(repos: Repositories) -> None:
    for n in range(3):
        for customer in ("a", "b"):
            await repos.messages.append(
                Message(
                    customer_id=customer,
                    channel=Channel.WIDGET,
                    direction=Direction.OUTBOUND,
                    author=Author.BOT,
                    text=f"{customer}{n}",
                )
            )
    after = await repos.messages.after_seq("a", 1)
    assert [m.seq for m in after] == [2, 3]
    assert [m.text for m in after] == ["a1", "a2"]


async def test_staff_username_is_unique(repos: Repositories) -> None:
    staff = Staff(username="li.wei", display_name="Li Wei", password_hash="x")
    assert (await repos.staff.add(staff)).created
    duplicate = await repos.staff.add(Staff(username="li.wei", display_name="B", password_hash="y"))
    assert not duplicate.created
    assert duplicate.item.display_name == "Li Wei"


async def test_consent_ledger_derives_current_state(repos: Repositories) -> None:
    def record(granted: bool, minute: int) -> ConsentRecord:
        return ConsentRecord(
            customer_id="c1",
            purpose=ConsentPurpose.EXPANDED_USE,
            granted=granted,
            notice_version="v1",
            text_hash="h",
            locale="en",
            channel=Channel.TELEGRAM,
            at=NOW + timedelta(minutes=minute),
        )

    await repos.consents.append(record(True, 1))
    await repos.consents.append(record(False, 2))
    assert len(await repos.consents.history("c1")) == 2  # nothing overwritten
    current = await repos.consents.current("c1")
    assert current[ConsentPurpose.EXPANDED_USE].granted is False


async def test_conversation_compare_and_set(repos: Repositories) -> None:
    saved = await repos.conversations.save(Conversation(id="k", locale="en", step="category"))
    moved = await repos.conversations.save(saved.model_copy(update={"step": "rating"}))
    assert moved.version == 2
    with pytest.raises(ConcurrentUpdate):
        await repos.conversations.save(saved.model_copy(update={"step": "text"}))
    with pytest.raises(ConcurrentUpdate):
        await repos.conversations.save(Conversation(id="k", locale="en"))


async def test_of_concurrent_writers_of_one_version_exactly_one_wins(repos: Repositories) -> None:
    saved = await repos.conversations.save(Conversation(id="k", locale="en", step="category"))
    for round_ in range(3):
        steps = ["rating", "text", "contact", "summary", "category"] * 4
        outcomes = await asyncio.gather(
            *(repos.conversations.save(saved.model_copy(update={"step": s})) for s in steps),
            return_exceptions=True,
        )
        won = [o for o in outcomes if isinstance(o, Conversation)]
        assert len(won) == 1, round_
        assert all(isinstance(o, ConcurrentUpdate) for o in outcomes if o not in won)
        stored = await repos.conversations.get("k")
        assert stored is not None
        assert (stored.version, stored.step) == (won[0].version, won[0].step)
        saved = stored
    # One claim a version written after the first (an insert), kept; no lock taken.
    claims = repos.conversation_versions.collection
    assert {d["_id"] async for d in claims.find()} == {f"{saved.epoch}@{n}" for n in (2, 3, 4)}
    assert await repos.locks.collection.count_documents({}) == 0


async def test_a_stale_copy_is_refused_after_its_versions_claim_ran_out(
    repos: Repositories,
) -> None:
    saved = await repos.conversations.save(Conversation(id="k", locale="en", step="category"))
    await repos.conversations.save(saved.model_copy(update={"step": "rating"}))
    claims = repos.conversation_versions.collection
    await claims.update_one({"_id": f"{saved.epoch}@2"}, {"$set": {"until": NOW}})
    with pytest.raises(ConcurrentUpdate):  # version 2 is stored: no takeover
        await repos.conversations.save(saved.model_copy(update={"step": "text"}))
    stored = await repos.conversations.get("k")
    assert stored is not None
    assert (stored.version, stored.step) == (2, "rating")
    # Claims are swept a while after they ran out: a copy held longer than that could
    # claim the next version again, so a copy held long has the stored version read.
    await claims.delete_many({})
    held_long = saved.model_copy()
    held_long._read_at = time.monotonic() - READ_FRESH.total_seconds() - 1
    with pytest.raises(ConcurrentUpdate):
        await repos.conversations.save(held_long.model_copy(update={"step": "text"}))
    stored = await repos.conversations.get("k")
    assert stored is not None
    assert (stored.version, stored.step) == (2, "rating")


async def test_version_claims_are_swept_a_while_after_they_ran_out(repos: Repositories) -> None:
    claims = repos.conversation_versions
    now = utcnow()
    for name, until in (("recent", now - CLAIM_GRACE + timedelta(seconds=5)), ("old", NOW)):
        await claims.collection.insert_one({"_id": name, "owner": "o", "until": until})
    assert await claims.sweep(now) == 1
    assert [d["_id"] async for d in claims.collection.find()] == ["recent"]


async def test_a_write_that_was_never_sent_gives_its_claim_back(
    repos: Repositories, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = await repos.conversations.save(Conversation(id="k", locale="en", step="category"))
    collection = repos.conversations.collection
    real = type(collection).replace_one
    failures = [WriteNotSent(TimeoutError())]  # the WriteGate gave up waiting for a turn

    async def replace_one(self: Any, *args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(type(collection), "replace_one", replace_one)
    with pytest.raises(DatabaseUnavailable):
        await repos.conversations.save(saved.model_copy(update={"step": "rating"}))
    # Tried again at once (not once the claim ran out, 30 s later), it is written.
    moved = await repos.conversations.save(saved.model_copy(update={"step": "rating"}))
    assert moved.version == 2


async def test_a_version_claimed_before_a_steps_effects_is_written_under_that_claim(
    repos: Repositories,
) -> None:
    conversations = repos.conversations
    saved = await conversations.save(Conversation(id="k", locale="en", step="category"))
    effects: list[str] = []
    async with conversations.next_version(saved):
        # Meanwhile a stale writer of the same version is refused, before its effects.
        with pytest.raises(ConcurrentUpdate):
            async with conversations.next_version(saved):
                effects.append("stale")
        effects.append("mine")
        moved = await conversations.save(saved.model_copy(update={"step": "rating"}))
    assert effects == ["mine"]
    assert moved.version == 2
    claims = repos.conversation_versions.collection
    assert {d["_id"] async for d in claims.find()} == {f"{saved.epoch}@2"}  # one claim


async def test_a_claimed_version_whose_step_failed_before_writing_is_given_back(
    repos: Repositories,
) -> None:
    conversations = repos.conversations
    saved = await conversations.save(Conversation(id="k", locale="en", step="category"))
    with pytest.raises(DatabaseUnavailable):
        async with conversations.next_version(saved):
            raise DatabaseUnavailable(TimeoutError("an effect could not be recorded"))
    # Tried again at once (not once the claim ran out, 30 s later), it is written.
    async with conversations.next_version(saved):
        moved = await conversations.save(saved.model_copy(update={"step": "rating"}))
    assert moved.version == 2


async def test_a_dead_writers_claim_holds_the_next_version_until_it_runs_out(
    repos: Repositories,
) -> None:
    saved = await repos.conversations.save(Conversation(id="k", locale="en", step="category"))
    # A process claimed version 2 and died before writing it.
    claims = repos.conversation_versions.collection
    claim = {"_id": f"{saved.epoch}@2", "owner": "dead"}
    await claims.insert_one({**claim, "until": utcnow() + timedelta(seconds=30)})
    with pytest.raises(ConcurrentUpdate):
        await repos.conversations.save(saved.model_copy(update={"step": "rating"}))
    assert not await repos.conversations.delete_if_idle("k", utcnow() + timedelta(days=1))
    # Once it ran out, the next writer takes it over (through a marker), once.
    await claims.replace_one({"_id": claim["_id"]}, {**claim, "until": NOW})
    outcomes = await asyncio.gather(
        *(
            repos.conversations.save(saved.model_copy(update={"step": s}))
            for s in ("rating", "text")
        ),
        return_exceptions=True,
    )
    won = [o for o in outcomes if isinstance(o, Conversation)]
    assert len(won) == 1
    assert won[0].version == 2
    assert await claims.count_documents({"_id": f"{saved.epoch}@2~dead"}) == 1
    stored = await repos.conversations.get("k")
    assert stored is not None
    assert stored.step == won[0].step
    assert await repos.conversations.delete_if_idle("k", utcnow() + timedelta(days=1))
    assert await repos.conversations.get("k") is None


async def test_a_deleted_dialogue_is_not_written_back_by_a_copy_from_before(
    repos: Repositories,
) -> None:
    saved = await repos.conversations.save(Conversation(id="k", locale="en", step="category"))
    assert await repos.conversations.erase("k") == 1
    assert await repos.conversations.erase("k") == 0
    # Started afresh: a new epoch, so the claims of the one before are not in its way.
    fresh = await repos.conversations.save(Conversation(id="k", locale="en", step="rating"))
    assert fresh.epoch != saved.epoch
    with pytest.raises(ConcurrentUpdate):  # the copy from before the erasure
        await repos.conversations.save(saved.model_copy(update={"step": "text"}))
    with pytest.raises(ConcurrentUpdate):
        await repos.conversations.delete(saved)
    moved = await repos.conversations.save(fresh.model_copy(update={"step": "text"}))
    stored = await repos.conversations.get("k")
    assert stored is not None
    assert (stored.epoch, stored.version, stored.step) == (
        fresh.epoch,
        moved.version,
        "text",
    )


async def test_an_erasure_gives_up_on_a_dialogue_a_writer_holds(
    repos: Repositories, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conversations, "DELETE_WAIT", timedelta(seconds=0.3))
    saved = await repos.conversations.save(Conversation(id="k", locale="en", step="category"))
    await repos.conversation_versions.collection.insert_one(
        {"_id": f"{saved.epoch}@2", "owner": "busy", "until": utcnow() + timedelta(seconds=30)}
    )
    with pytest.raises(Busy):
        await repos.conversations.erase("k")
    assert await repos.conversations.get("k") is not None  # left for the erasure's next run


async def test_a_dialogue_stored_before_epochs_is_written_with_the_claims_of_before(
    repos: Repositories,
) -> None:
    await repos.conversations.collection.insert_one(
        {"_id": "k", "locale": "en", "step": "category", "version": 3, "updated_at": NOW}
    )
    old = await repos.conversations.get("k")
    assert old is not None
    assert old.epoch is None
    moved = await repos.conversations.save(old.model_copy(update={"step": "rating"}))
    assert moved.version == 4
    assert moved.epoch is not None
    with pytest.raises(ConcurrentUpdate):
        await repos.conversations.save(old.model_copy(update={"step": "text"}))
    assert await repos.locks.collection.count_documents({}) == 0  # claimed, then dropped
    again = await repos.conversations.save(moved.model_copy(update={"step": "text"}))
    assert (again.version, again.epoch) == (5, moved.epoch)
    assert await repos.conversation_versions.collection.count_documents({}) == 1


async def test_ticket_references_are_unique_under_concurrency(repos: Repositories) -> None:
    # FerretDB v1 loses concurrent $inc updates; references come from the unique index.
    results = await asyncio.gather(
        *(repos.tickets.add(make_ticket("c1"), prefix="FB", year=2026) for _ in range(20))
    )
    references = sorted(r.item.reference for r in results)
    assert references == [f"FB-2026-{n:06d}" for n in range(1, 21)]
    next_year = await repos.tickets.add(make_ticket("c2"), prefix="FB", year=2027)
    assert next_year.item.reference == "FB-2027-000001"


async def test_sequence_numbers_are_unique_under_concurrency(repos: Repositories) -> None:
    results = await asyncio.gather(
        *(
            repos.messages.append(
                Message(
                    customer_id="c1",
                    channel=Channel.WIDGET,
                    direction=Direction.INBOUND,
                    author=Author.CUSTOMER,
                    text=str(n),
                )
            )
            for n in range(15)
        )
    )
    assert sorted(r.item.seq for r in results) == list(range(1, 16))


async def test_a_lock_has_one_holder_among_many_contenders(repos: Repositories) -> None:
    ttl = timedelta(seconds=30)
    for round_ in range(5):
        winners = await asyncio.gather(
            *(repos.locks.acquire(f"delivery:m{round_}", ttl, now=NOW) for _ in range(20))
        )
        assert sum(w is not None for w in winners) == 1


async def test_an_expired_lock_is_taken_over_and_a_released_one_is_free(
    repos: Repositories,
) -> None:
    ttl = timedelta(seconds=30)
    first = await repos.locks.acquire("job", ttl, now=NOW)
    assert first is not None
    assert await repos.locks.acquire("job", ttl, now=NOW + timedelta(seconds=10)) is None
    # The holder died: after the lease one contender (only one) takes over.
    later = NOW + timedelta(seconds=31)
    takers = await asyncio.gather(*(repos.locks.acquire("job", ttl, now=later) for _ in range(10)))
    held = [t for t in takers if t is not None]
    assert len(held) == 1
    assert held[0].gen == 1
    await repos.locks.release(held[0])
    assert await repos.locks.acquire("job", ttl, now=later) is not None
    assert await repos.locks.collection.count_documents({}) == 1


async def test_an_inbound_event_is_claimed_once_and_then_known_as_handled(
    repos: Repositories,
) -> None:
    ttl = timedelta(minutes=2)
    claims = await asyncio.gather(
        *(repos.inbound.claim("telegram:1:7", ttl, now=NOW) for _ in range(20))
    )
    assert claims.count(Claim.MINE) == 1
    assert set(claims) == {Claim.MINE, Claim.BUSY}
    assert not await repos.inbound.seen("telegram:1:7")  # claimed is not handled
    await repos.inbound.done("telegram:1:7")
    assert await repos.inbound.seen("telegram:1:7")
    assert await repos.inbound.claim("telegram:1:7", ttl, now=NOW) is Claim.DONE
    # A key recorded before claims existed (no `until`) counts as handled.
    await repos.inbound.collection.insert_one({"_id": "telegram:1:6", "at": NOW})
    assert await repos.inbound.claim("telegram:1:6", ttl, now=NOW) is Claim.DONE


async def test_a_failed_or_dead_claim_lets_a_redelivery_handle_the_event(
    repos: Repositories,
) -> None:
    ttl = timedelta(minutes=2)
    assert await repos.inbound.claim("telegram:1:8", ttl, now=NOW, owner="h") is Claim.MINE
    assert await repos.inbound.give_up("telegram:1:8", "h", now=NOW)  # the handler failed
    assert await repos.inbound.claim("telegram:1:8", ttl, now=NOW) is Claim.MINE
    # That holder died: while its claim runs, a redelivery waits; after it, of many
    # redeliveries at once exactly one takes over, and then the others wait on it.
    assert await repos.inbound.claim("telegram:1:8", ttl, now=NOW + ttl / 2) is Claim.BUSY
    later = NOW + ttl + timedelta(seconds=1)
    takers = await asyncio.gather(
        *(repos.inbound.claim("telegram:1:8", ttl, now=later) for _ in range(10))
    )
    assert takers.count(Claim.MINE) == 1
    assert await repos.inbound.claim("telegram:1:8", ttl, now=later) is Claim.BUSY
    # The taker dies as well: the next takeover is decided anew.
    muchlater = later + ttl + timedelta(seconds=1)
    takers = await asyncio.gather(
        *(repos.inbound.claim("telegram:1:8", ttl, now=muchlater) for _ in range(10))
    )
    assert takers.count(Claim.MINE) == 1
    await repos.inbound.done("telegram:1:8")
    assert await repos.inbound.claim("telegram:1:8", ttl, now=muchlater) is Claim.DONE


async def test_only_the_holder_gives_a_claim_up_and_only_while_it_is_surely_theirs(
    repos: Repositories,
) -> None:
    ttl = timedelta(minutes=2)
    key = "telegram:1:10"
    assert await repos.inbound.claim(key, ttl, now=NOW, owner="h") is Claim.MINE
    assert not await repos.inbound.give_up(key, "other", now=NOW)
    assert await repos.inbound.claim(key, ttl, now=NOW) is Claim.BUSY  # still held
    # Its holder, too late: another may be taking it over, so it is left to run out.
    late = NOW + ttl - timedelta(seconds=1)
    assert not await repos.inbound.give_up(key, "h", now=late)
    # Taken over once it ran out: the first holder's late give-up leaves the taker's.
    later = NOW + ttl + timedelta(seconds=1)
    assert await repos.inbound.claim(key, ttl, now=later, owner="t") is Claim.MINE
    assert not await repos.inbound.give_up(key, "h", now=later)
    assert await repos.inbound.claim(key, ttl, now=later) is Claim.BUSY
    await repos.inbound.done(key)
    assert not await repos.inbound.give_up(key, "t", now=later)  # handled stays handled
    assert await repos.inbound.claim(key, ttl, now=later) is Claim.DONE
    # A short claim (3 s) keeps a third of its length as the margin, not 15 s.
    short = timedelta(seconds=3)
    assert await repos.inbound.claim("telegram:1:12", short, now=NOW, owner="h") is Claim.MINE
    assert not await repos.inbound.give_up("telegram:1:12", "h", now=NOW + timedelta(seconds=2.5))
    assert await repos.inbound.give_up("telegram:1:12", "h", now=NOW + timedelta(seconds=1))


async def test_a_holder_keeps_its_claim_by_claiming_again(repos: Repositories) -> None:
    ttl = timedelta(minutes=2)
    key = "telegram:1:11"
    assert await repos.inbound.claim(key, ttl, now=NOW, owner="h") is Claim.MINE
    kept = NOW + timedelta(minutes=1)
    assert await repos.inbound.claim(key, ttl, now=kept, owner="h") is Claim.MINE
    # Past the first `until`, within the second: not taken over.
    after_first = NOW + ttl + timedelta(seconds=1)
    assert await repos.inbound.claim(key, ttl, now=after_first) is Claim.BUSY
    # Kept again near its end (10 s left): through the takeover's marker, where a taker
    # that thinks it ran out would meet it, not by writing over it.
    near_end = kept + ttl - timedelta(seconds=10)
    assert await repos.inbound.claim(key, ttl, now=near_end, owner="h") is Claim.MINE
    assert await repos.inbound.collection.find_one({"_id": f"{key}~h"}) is not None
    kept = near_end
    # A claim of its own that ran out is taken over like any other: one winner, even
    # when the old holder claims again at the same moment.
    gone = kept + ttl + timedelta(seconds=1)
    takers = await asyncio.gather(
        repos.inbound.claim(key, ttl, now=gone, owner="h"),
        *(repos.inbound.claim(key, ttl, now=gone) for _ in range(5)),
    )
    assert takers.count(Claim.MINE) == 1


async def test_a_claim_whose_answer_was_lost_is_its_owners_when_it_claims_again(
    repos: Repositories,
) -> None:
    ttl = timedelta(minutes=2)
    # The first insert reached the server; its answer did not reach the caller.
    assert await repos.inbound.claim("telegram:1:9", ttl, now=NOW, owner="try") is Claim.MINE
    assert await repos.inbound.claim("telegram:1:9", ttl, now=NOW, owner="try") is Claim.MINE
    assert await repos.inbound.claim("telegram:1:9", ttl, now=NOW) is Claim.BUSY  # not others'
    await repos.inbound.done("telegram:1:9")
    assert await repos.inbound.claim("telegram:1:9", ttl, now=NOW, owner="try") is Claim.DONE


async def test_a_takeover_whose_taker_died_is_taken_over_in_turn(repos: Repositories) -> None:
    ttl = timedelta(minutes=1)
    collection = repos.inbound.collection
    # The holder died; a taker claimed the takeover and died before writing its claim.
    await collection.insert_one({"_id": "telegram:1:9", "at": NOW, "until": NOW, "owner": "a"})
    await collection.insert_one({"_id": "telegram:1:9~a", "at": NOW, "until": NOW, "owner": "b"})
    later = NOW + timedelta(seconds=1)
    takers = await asyncio.gather(
        *(repos.inbound.claim("telegram:1:9", ttl, now=later) for _ in range(10))
    )
    assert takers.count(Claim.MINE) == 1  # not stuck behind the dead taker's marker
    assert await repos.inbound.claim("telegram:1:9", ttl, now=later) is Claim.BUSY


async def test_unreachable_database_raises_a_clear_error() -> None:
    database = Database(f"mongodb://127.0.0.1:{free_port()}/", "nowhere", timeout_ms=300)
    repos = Repositories.create(database)
    try:
        with pytest.raises(DatabaseUnavailable, match="database is unreachable"):
            await repos.customers.get("anything")
        with pytest.raises(DatabaseUnavailable, match="MONGODB_URI"):
            await database.ping()
    finally:
        await database.close()
        await close_abandoned_sockets()


async def test_indexes_are_completed_at_every_start(repos: Repositories) -> None:
    # A restart finds some indexes there and some missing (a new release added one).
    await repos.tickets.collection.drop_index("flow_id_1")
    await repos.ensure_indexes()
    await repos.ensure_indexes()
    names = {index["name"] async for index in await repos.tickets.collection.list_indexes()}
    assert {"flow_id_1", "reference_1", "ref_year_1_ref_number_1"} <= names


def words(customer_id: str, text: str, **extra: object) -> Message:
    return Message(
        customer_id=customer_id,
        channel=Channel.WIDGET,
        direction=Direction.INBOUND,
        author=Author.CUSTOMER,
        text=text,
        **extra,
    )


async def test_numbering_goes_on_from_messages_stored_before_counters(
    repos: Repositories,
) -> None:
    # Stored as the repository did before message_sequences existed: no counter.
    for seq in (1, 2, 3):
        await repos.messages.insert(words("old", f"w{seq}", seq=seq))
    assert await repos.sequences.last("old") is None
    assert await repos.messages.latest_seq("old") == 3
    appended = await repos.messages.append(words("old", "w4"))
    assert appended.item.seq == 4
    assert await repos.sequences.last("old") == 4


async def test_a_counter_behind_its_messages_neither_loses_nor_repeats_a_number(
    repos: Repositories,
) -> None:
    for n in range(3):
        await repos.messages.append(words("c", f"w{n}"))
    # A lost increment (FerretDB's are not atomic) leaves the counter behind.
    await repos.sequences.collection.update_one({"_id": "c"}, {"$set": {"last": 1}})
    assert await repos.messages.reaches("c", 3)  # a device that saw 3 is not told "erased"
    assert not await repos.messages.reaches("c", 4)
    appended = await repos.messages.append(words("c", "w3"))
    assert appended.item.seq == 4  # 2 and 3 were taken: the unique index said so
    assert [m.seq for m in await repos.messages.all_for_customer("c")] == [1, 2, 3, 4]


async def test_a_message_stored_under_a_random_id_is_still_found_by_its_key(
    repos: Repositories,
) -> None:
    await repos.messages.insert(words("c", "before", idempotency_key="widget:x:1", seq=1))
    found = await repos.messages.by_idempotency_key("widget:x:1")
    assert found is not None
    assert found.text == "before"
    again = await repos.messages.append(words("c", "resent", idempotency_key="widget:x:1"))
    assert not again.created
    assert again.item.text == "before"
    assert await repos.messages.collection.count_documents({}) == 1


async def test_erasing_a_customers_messages_forgets_their_counter(repos: Repositories) -> None:
    await repos.messages.append(words("gone", "w"))
    assert await repos.sequences.last("gone") == 1
    assert await repos.messages.delete_for_customer("gone") == 1
    assert await repos.sequences.last("gone") is None
    assert (await repos.messages.append(words("gone", "new life"))).item.seq == 1


async def test_the_open_ticket_is_found_from_the_last_one_filed(repos: Repositories) -> None:
    older = (await repos.tickets.add(make_ticket("c1"), prefix="FB", year=2026)).item
    later = make_ticket("c1").model_copy(update={"created_at": NOW + timedelta(hours=1)})
    newer = (await repos.tickets.add(later, prefix="FB", year=2026)).item
    theirs = (await repos.tickets.add(make_ticket("c2"), prefix="FB", year=2026)).item
    assert (await repos.tickets.latest_open("c1", newer.id) or older).id == newer.id
    # Someone else's ticket is never theirs, whatever the hint says.
    assert (await repos.tickets.latest_open("c1", theirs.id) or theirs).id == newer.id
    await repos.tickets.collection.update_one(
        {"_id": newer.id}, {"$set": {"status": TicketStatus.CLOSED}}
    )
    # The last one is closed: the search finds the older one still open.
    assert (await repos.tickets.latest_open("c1", newer.id) or newer).id == older.id
    await repos.tickets.collection.update_one(
        {"_id": older.id}, {"$set": {"status": TicketStatus.CLOSED}}
    )
    assert await repos.tickets.latest_open("c1", newer.id) is None


def consent(customer_id: str, purpose: ConsentPurpose, granted: bool) -> ConsentRecord:
    return ConsentRecord(
        customer_id=customer_id,
        purpose=purpose,
        granted=granted,
        notice_version="v1",
        text_hash="h",
        locale="en",
        channel=Channel.WIDGET,
        at=NOW,
    )


def in_force(ledger: list[ConsentRecord]) -> dict[ConsentPurpose, bool]:
    state: dict[ConsentPurpose, bool] = {}
    for record in ledger:
        state[record.purpose] = record.granted
    return state


async def test_the_consents_in_force_follow_the_ledger_under_concurrent_changes(
    repos: Repositories,
) -> None:
    purposes = [ConsentPurpose.PROCESSING, ConsentPurpose.EXPANDED_USE, ConsentPurpose.LICENCE]
    await asyncio.gather(
        *(repos.consents.append(consent("c", purposes[n % 3], n % 2 == 0)) for n in range(9))
    )
    ledger = await repos.consents.history("c")
    assert [r.seq for r in ledger] == list(range(1, 10))  # one number each, none skipped
    current = await repos.consents.current("c")
    assert {p: r.granted for p, r in current.items()} == in_force(ledger)


async def test_a_state_that_missed_a_record_is_rebuilt_not_believed(
    repos: Repositories,
) -> None:
    await repos.consents.append(consent("c", ConsentPurpose.EXPANDED_USE, True))
    await repos.consents.append(consent("c", ConsentPurpose.EXPANDED_USE, False))
    # A writer died after adding a withdrawal to the ledger, before the state: the state
    # still says "granted", at the number before.
    state = await repos.consent_states.collection.find_one({"_id": "c"})
    assert state is not None
    stale = {**state["records"]["expanded_use"], "granted": True}
    await repos.consent_states.collection.replace_one(
        {"_id": "c"}, {"seq": 1, "records": {"expanded_use": stale}}
    )
    current = await repos.consents.current("c")
    assert current[ConsentPurpose.EXPANDED_USE].granted is False
    # The next record is numbered after the ledger's last, not the stale state's.
    third = await repos.consents.append(consent("c", ConsentPurpose.LICENCE, True))
    assert third.seq == 3
    # A ledger written before states existed: the state is made from it.
    await repos.consents.collection.insert_one(
        {**consent("old", ConsentPurpose.PROCESSING, True).model_dump(by_alias=True), "seq": 1}
    )
    assert (await repos.consents.current("old"))[ConsentPurpose.PROCESSING].granted is True
    assert (await repos.consents.append(consent("old", ConsentPurpose.LICENCE, False))).seq == 2


async def test_erasing_consents_forgets_the_state_in_force(repos: Repositories) -> None:
    await repos.consents.append(consent("gone", ConsentPurpose.PROCESSING, True))
    assert await repos.consent_states.collection.count_documents({"_id": "gone"}) == 1
    assert await repos.consents.delete_for_customer("gone") == 1
    assert await repos.consent_states.collection.count_documents({"_id": "gone"}) == 0
    assert await repos.consents.current("gone") == {}


async def test_a_copy_from_before_an_erasure_is_refused_by_the_dialogue_started_afresh(
    repos: Repositories,
) -> None:
    """Stored before epochs, erased, started afresh (with an epoch) and at the same version
    again: the old copy's claim of before is free, but the stored dialogue is not the one
    it copied."""
    await repos.conversations.collection.insert_one(
        {
            "_id": "k",
            "locale": "en",
            "step": "summary",
            "answers": {"contact": {"phone": "+8613800000000"}},
            "customer_id": "c1",
            "version": 1,
            "updated_at": utcnow(),
        }
    )
    stale = await repos.conversations.get("k")  # another device, in the middle of a step
    assert stale is not None
    assert await repos.conversations.erase("k") == 1
    await repos.locks.forget("conversation:k")  # as PrivacyService.erase does
    fresh = await repos.conversations.save(Conversation(id="k", locale="en", step="category"))
    assert fresh.version == 1
    with pytest.raises(ConcurrentUpdate):
        await repos.conversations.save(stale.model_copy(update={"step": "done"}))
    stored = await repos.conversations.get("k")
    assert stored is not None
    assert (stored.epoch, stored.answers, stored.customer_id) == (fresh.epoch, {}, None)


async def test_a_dialogue_stored_at_version_0_is_deleted_too(repos: Repositories) -> None:
    await repos.conversations.insert(Conversation(id="k", locale="en", step="text"))
    assert await repos.conversations.erase("k") == 1
    assert await repos.conversations.get("k") is None
    await repos.conversations.insert(Conversation(id="k", locale="en", step="text"))
    assert await repos.conversations.delete_if_idle("k", utcnow() + timedelta(days=1))
    assert await repos.conversations.get("k") is None


async def test_a_dead_claim_swept_during_its_takeover_is_not_held_twice(
    repos: Repositories, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A taker of a dead writer's claim wins the marker; the dead claim is swept meanwhile
    and another writer claims the version afresh: one of the two writes it, not both."""
    saved = await repos.conversations.save(Conversation(id="k", locale="en", step="category"))
    claims = repos.conversation_versions.collection
    key = f"{saved.epoch}@2"
    await claims.insert_one({"_id": key, "owner": "dead", "until": NOW})
    real_claim_once = claim_once
    other: list[asyncio.Task[Conversation]] = []

    async def marker_then_sweep(*args: Any, **kwargs: Any) -> Claim:
        won = await real_claim_once(*args, **kwargs)
        await claims.delete_one({"_id": key})  # swept
        other.append(
            asyncio.create_task(repos.conversations.save(saved.model_copy(update={"step": "text"})))
        )
        await asyncio.sleep(0.2)  # the other writer claims afresh and writes
        return won

    monkeypatch.setattr(conversations, "claim_once", marker_then_sweep)
    with pytest.raises(ConcurrentUpdate):
        await repos.conversations.save(saved.model_copy(update={"step": "rating"}))
    assert (await other[0]).version == 2
    stored = await repos.conversations.get("k")
    assert stored is not None
    assert (stored.version, stored.step) == (2, "text")
