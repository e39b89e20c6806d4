"""Customers' rights over their data through the privacy service, against the real
database (C3.2.6, C3.2.5, C3.1.7). The channels' self-service is tested in
tests/channels; this file checks what is stored, exported and erased."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest

from bot.app import Container
from bot.domain.flow import Command
from bot.domain.models import (
    Attachment,
    AuditEntry,
    Channel,
    ConsentPurpose,
    Correction,
    Customer,
    Message,
    PrivacyRequestKind,
    PrivacyRequestState,
    Ticket,
    TicketStatus,
    TimelineEvent,
)
from bot.domain.privacy import EXPORT_FORMAT, EXPORT_VERSION, conversation_key
from bot.domain.text import Text
from bot.services import privacy as privacy_service
from bot.services.privacy_dialogue import ERASED
from bot.services.tickets import QueueFilters, TicketNotFound
from bot.storage import CustomerErased
from tests.services.chat import Chat
from tests.support import FixedClock, everything_stored

ALICE_TEXT = "Alice: the blender lid cracked on day one."
BOB_TEXT = "Bob: the courier left my parcel in the rain."


async def _customer(container: Container, channel: Channel, user: str) -> Customer:
    customer = await container.repos.customers.find(channel, user)
    assert customer is not None
    return customer


async def _log_call(container: Container, text: str, flow: str) -> Ticket:
    """Staff log a phone call from the same caller (bot.console intake)."""
    return await container.tickets.log_on_behalf(
        staff_id="staff-2",
        channel=Channel.PHONE,
        locale="en",
        contact={"phone": "+8613800138000"},
        answers={"category": "product_quality", "rating": 2, "text": text},
        flow_id=f"console:{flow}",
        external_id="+8613800138000",
    )


async def _stall_erasure(
    container: Container, customer: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An erasure whose process died before its last step: the record stays, marked."""

    async def died(*args: Any) -> Any:
        raise RuntimeError("the process died")

    with monkeypatch.context() as patch:
        patch.setattr(container.repos.customers, "delete", died)
        with pytest.raises(RuntimeError):
            await container.privacy.erase(customer)


async def _file(container: Container, chat: Chat, text: str, email: str) -> Ticket:
    await chat.command(Command.START)
    for value in ("yes", "yes", "yes", "product_quality", "2"):
        await chat.choose(value)
    await chat.text(text)
    await chat.file(
        Attachment(kind="photo", file_ref=f"tg-file-{chat.user}", name=f"{chat.user}.jpg")
    )
    await chat.choose("done")
    await chat.text(email)
    await chat.choose("submit")
    customer = await _customer(container, chat.channel, chat.user)
    (ticket,) = await container.repos.tickets.all_for_customer(customer.id)
    return ticket


async def _two_customers(container: Container) -> tuple[Chat, Chat, Ticket, Ticket]:
    alice = Chat(container, "alice-tg-7001", locale="en")
    bob = Chat(container, "bob-widget-visitor-0000000000000001", channel=Channel.WIDGET)
    ticket_a = await _file(container, alice, ALICE_TEXT, "alice@example.com")
    ticket_b = await _file(container, bob, BOB_TEXT, "+86 138 0013 8000")
    await container.tickets.staff_reply(ticket_a.id, staff_id="s1", text="Sorry, Alice.")
    await container.tickets.staff_reply(ticket_b.id, staff_id="s1", text="Sorry, Bob.")
    await alice.text("Alice again: and the blade is blunt.")
    await container.delivery.drain()
    return alice, bob, ticket_a, ticket_b


async def test_c3_2_6_export_holds_all_of_theirs_and_none_of_the_other(
    container: Container,
) -> None:
    alice, _bob, ticket_a, _ticket_b = await _two_customers(container)
    customer = await _customer(container, Channel.TELEGRAM, alice.user)

    document = await container.privacy.export(customer)
    raw = container.privacy.export_bytes(document).decode("utf-8")
    exported = json.loads(raw)

    assert exported["format"] == EXPORT_FORMAT
    assert exported["version"] == EXPORT_VERSION
    assert exported["customer"]["channel_user_id"] == alice.user
    assert exported["customer"]["email"] == "alice@example.com"
    (ticket,) = exported["tickets"]
    assert ticket["reference"] == ticket_a.reference
    assert ticket["text"] == ALICE_TEXT
    assert ticket["attachments"][0]["reference"] == "tg-file-alice-tg-7001"
    assert {c["purpose"] for c in exported["consents"]} == {p.value for p in ConsentPurpose}
    texts = [m["text"] for m in exported["messages"]]
    assert any("Sorry, Alice." in text for text in texts)
    assert "Alice again: and the blade is blunt." in texts
    assert all(m["ticket"] == ticket_a.reference for m in exported["messages"])
    # Nothing of the other customer.
    for secret in ("Bob", "bob-widget", "8613800138000"):
        assert secret not in raw
    # Logged as a request, answered.
    (request,) = await container.repos.privacy_requests.for_customer(customer.id)
    assert request.kind is PrivacyRequestKind.EXPORT
    assert request.state is PrivacyRequestState.DONE


async def test_c3_2_6_erasure_leaves_nothing_but_anonymous_statistics(
    container: Container,
) -> None:
    alice, bob, ticket_a, _ticket_b = await _two_customers(container)
    customer = await _customer(container, Channel.TELEGRAM, alice.user)
    await container.repos.audit.append(
        AuditEntry(
            actor="s1", action="customer.view", target_type="customer", target_id=customer.id
        )
    )
    key = conversation_key(Channel.TELEGRAM.value, alice.user)
    await container.repos.upload_tokens.issue(key, ttl=timedelta(hours=1))
    before = await everything_stored(container)
    assert alice.user in before
    assert customer.id in before

    report = await container.privacy.erase(customer)

    after = await everything_stored(container)
    for trace in (
        alice.user,
        customer.id,
        key,
        "alice@example.com",
        ALICE_TEXT,
        "Alice again",
        "Sorry, Alice.",
        "tg-file-alice",
        "lid.jpg",
    ):
        assert trace not in after, trace
    # The other customer is untouched.
    for kept in (bob.user, BOB_TEXT, "Sorry, Bob.", "+8613800138000"):
        assert kept in after, kept
    # The ticket stays as anonymous figures.
    anonymous = await container.repos.tickets.get(ticket_a.id)
    assert anonymous is not None
    assert (anonymous.category.value, anonymous.rating) == ("product_quality", 2)
    assert anonymous.status is TicketStatus.ACKNOWLEDGED  # a reply does not change it
    assert anonymous.text == ""
    assert anonymous.attachments == []
    assert anonymous.customer_id == ""
    assert anonymous.anonymized_at is not None
    assert report.removed["customers"] == 1
    # The request stays as the record that it was answered, naming no one.
    (request,) = [
        r
        for r in await container.repos.privacy_requests.recent()
        if r.kind is PrivacyRequestKind.ERASE
    ]
    assert request.state is PrivacyRequestState.DONE
    assert request.customer_id is None
    # Running it again (a retry) is harmless.
    again = await container.privacy.erase(customer)
    assert again.removed.get("customers", 0) == 0
    assert alice.user not in await everything_stored(container)


async def test_c3_2_6_correction_keeps_the_original_for_staff(container: Container) -> None:
    alice, _bob, ticket_a, _ = await _two_customers(container)
    customer = await _customer(container, Channel.TELEGRAM, alice.user)
    updated = await container.privacy.correct_ticket(
        customer, ticket_a.id, "It was the lid AND the jar."
    )
    assert updated.text == ALICE_TEXT
    assert [c.text for c in updated.corrections] == ["It was the lid AND the jar."]
    assert updated.events[-1].kind == "corrected"


async def test_c3_1_7_withdrawing_expanded_use_takes_effect_at_once(
    container: Container, clock: FixedClock
) -> None:
    alice, _bob, ticket_a, _ = await _two_customers(container)
    customer = await _customer(container, Channel.TELEGRAM, alice.user)
    assert ticket_a.expanded_use
    await container.privacy.withdraw(
        customer, ConsentPurpose.EXPANDED_USE, shown=Text("withdraw expanded use")
    )
    ticket = await container.repos.tickets.get(ticket_a.id)
    assert ticket is not None
    assert not ticket.expanded_use
    current = await container.repos.consents.current(customer.id)
    assert current[ConsentPurpose.EXPANDED_USE].granted is False


async def test_find_customers_by_reference_email_phone_and_id(container: Container) -> None:
    alice, bob, ticket_a, _ = await _two_customers(container)
    a = await _customer(container, Channel.TELEGRAM, alice.user)
    b = await _customer(container, Channel.WIDGET, bob.user)
    find = container.privacy.find_customers

    async def ids(term: str) -> list[str]:
        return [c.id for c in await find(term)]

    assert await ids(ticket_a.reference) == [a.id]
    assert await ids(ticket_a.reference.lower()) == [a.id]
    assert await ids("ALICE@example.com") == [a.id]
    assert await ids("+86 138-0013-8000") == [b.id]
    assert await ids(b.id) == [b.id]
    assert await ids("nobody@example.com") == []
    assert await ids("") == []
    assert await ids('{"$where": "1"}') == []


async def test_c3_2_6_a_staff_topic_that_cannot_be_deleted_now_is_deleted_later(
    container: Container,
) -> None:
    alice, _bob, ticket_a, _ = await _two_customers(container)
    await container.repos.tickets.add_event(
        ticket_a.id,
        event=TimelineEvent(kind="topic", actor="system", detail="77"),
        telegram_topic_id=77,
        telegram_topic_chat_id=-100555,
    )
    attempts: list[tuple[int, int]] = []
    telegram_up = False

    async def eraser(chat_id: int, topic_id: int) -> bool:
        attempts.append((chat_id, topic_id))
        if not telegram_up:
            raise ConnectionError("Telegram unreachable")
        return True

    container.privacy.topic_eraser = eraser
    customer = await _customer(container, Channel.TELEGRAM, alice.user)
    report = await container.privacy.erase(customer)
    assert report.pending == 1
    ticket = await container.repos.tickets.get(ticket_a.id)
    assert ticket is not None
    assert ticket.telegram_topic_id is None  # the ticket forgets it; the request remembers

    assert await container.privacy.finish_pending() == 0  # still down: kept for later
    telegram_up = True
    assert await container.privacy.finish_pending() == 1
    assert attempts == [(-100555, 77)] * 3
    assert await container.repos.privacy_requests.with_pending_work() == []
    assert await container.privacy.finish_pending() == 0


async def test_c3_2_6_an_erasure_cut_short_is_finished_by_the_next_round(
    container: Container, clock: FixedClock
) -> None:
    alice, _bob, _ticket_a, _ = await _two_customers(container)
    customer = await _customer(container, Channel.TELEGRAM, alice.user)
    # A process logged the request, began, and died before doing anything else.
    request = await container.privacy.log_request(
        customer, PrivacyRequestKind.ERASE, channel=customer.channel, by="customer"
    )
    await container.repos.privacy_requests.set_fields(
        request.id, **{"detail.started_at": clock().isoformat()}
    )
    # A request staff logged and have not started is not the job's to carry out.
    waiting = await container.privacy.log_request(
        customer, PrivacyRequestKind.ERASE, channel=customer.channel, by="staff-1"
    )
    assert await container.privacy.finish_pending() == 0  # too fresh: it may be running
    clock.advance(minutes=10)
    assert await container.privacy.finish_pending() == 1
    assert await container.repos.customers.get(customer.id) is None
    done = await container.repos.privacy_requests.get(request.id)
    assert done is not None
    assert done.state is PrivacyRequestState.DONE
    assert done.customer_id is None
    untouched = await container.repos.privacy_requests.get(waiting.id)
    assert untouched is not None
    assert untouched.customer_id is None  # the person is gone, so is the link
    assert untouched.state is PrivacyRequestState.DONE  # nothing is left to answer
    assert untouched.detail["answered_by_erasure"] == request.id


async def test_a_topic_that_can_never_be_deleted_is_given_up_and_flagged(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(privacy_service, "TOPIC_TRIES", 2)
    alice, _bob, ticket_a, _ = await _two_customers(container)
    await container.repos.tickets.add_event(
        ticket_a.id,
        event=TimelineEvent(kind="topic", actor="system", detail="78"),
        telegram_topic_id=78,
        telegram_topic_chat_id=-100556,
    )

    async def no_rights(chat_id: int, topic_id: int) -> bool:
        raise RuntimeError("Bad Request: not enough rights to delete the topic")

    container.privacy.topic_eraser = no_rights
    report = await container.privacy.erase(await _customer(container, Channel.TELEGRAM, alice.user))
    assert await container.privacy.finish_pending() == 0  # first retry: kept
    assert await container.privacy.finish_pending() == 0  # second: given up
    assert await container.repos.privacy_requests.with_pending_work() == []
    request = await container.repos.privacy_requests.get(report.request_id)
    assert request is not None
    assert request.detail["telegram_topics_left"] == "1"  # staff delete it by hand


async def test_c3_2_6_a_ticket_filed_while_the_erasure_runs_is_erased_too(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The customer presses submit on one device while the erasure runs from another (or
    from the console): the ticket is filed after the erasure listed the tickets. It holds
    the dialogue's claim, which the erasure waits for, and is erased after it."""
    words = "Carol: my order 4471 was wrong, call me at home."
    carol = Chat(container, "carol-9001", locale="en")
    await carol.to_the_summary(words)
    customer = await container.repos.customers.find(Channel.TELEGRAM, carol.user)
    assert customer is not None

    filing, listed = asyncio.Event(), asyncio.Event()
    real_file = container.tickets.file
    real_all = container.repos.tickets.all_for_customer

    async def slow_file(*args: Any, **kwargs: Any) -> Any:
        filing.set()  # inside the step's claim, about to file
        await listed.wait()
        return await real_file(*args, **kwargs)

    async def listing(customer_id: str) -> Any:
        found = await real_all(customer_id)
        listed.set()
        return found

    monkeypatch.setattr(container.tickets, "file", slow_file)
    monkeypatch.setattr(container.repos.tickets, "all_for_customer", listing)
    submit = asyncio.create_task(carol.choose("submit"))
    await asyncio.wait_for(filing.wait(), 10)
    report = await container.privacy.erase(customer)
    await submit
    assert report.removed.get("customers") == 1
    stored = await everything_stored(container)
    assert words not in stored
    assert customer.id not in stored


@pytest.mark.parametrize("writer", ["their words", "a staff reply"])
@pytest.mark.parametrize("lands", ["before the record goes", "after the erasure"])
async def test_c3_2_6_a_message_stored_while_the_erasure_runs_is_erased_too(
    container: Container, monkeypatch: pytest.MonkeyPatch, writer: str, lands: str
) -> None:
    """Words going onto the open ticket, and a staff reply, hold no claim the erasure
    waits for: each reads the customer, then stores. Stored after the erasure deleted
    the messages (while it finishes, or after it), the message stayed under the
    customer's id, where no retention rule looks. Now the writer takes it back."""
    words = "Dave: the heater still rattles, my flat is 12B."
    dave = Chat(container, "dave-7002", locale="en")
    await dave.happy_path()
    customer = await _customer(container, Channel.TELEGRAM, dave.user)
    (ticket,) = await container.repos.tickets.all_for_customer(customer.id)

    storing, gate, landed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    real_append = container.repos.messages.append
    real_delete = container.repos.customers.delete

    async def held_append(message: Any, *args: Any, **kwargs: Any) -> Any:
        storing.set()  # the writer has read the customer, before the erasure marked them
        await gate.wait()
        try:
            return await real_append(message, *args, **kwargs)
        finally:
            landed.set()

    async def deleting(*args: Any) -> Any:  # the erasure's last step
        gate.set()
        await landed.wait()
        return await real_delete(*args)

    monkeypatch.setattr(container.repos.messages, "append", held_append)
    if lands == "before the record goes":
        monkeypatch.setattr(container.repos.customers, "delete", deleting)

    async def write() -> Any:
        if writer == "their words":
            return await dave.text(words)
        with pytest.raises(TicketNotFound):  # as for any ticket whose customer is gone
            await container.tickets.staff_reply(ticket.id, staff_id="staff-1", text=words)
        return None

    writing = asyncio.create_task(write())
    await asyncio.wait_for(storing.wait(), 10)
    report = asyncio.create_task(container.privacy.erase(customer))
    if lands == "after the erasure":
        await report
        gate.set()
    replies = await asyncio.wait_for(writing, 10)
    assert (await report).removed.get("customers") == 1
    stored = await everything_stored(container)
    assert words not in stored
    assert customer.id not in stored
    if writer == "their words":  # told their words were not kept: they are erased
        assert [r.text for r in replies] == [container.i18n.render("en", Text(ERASED))]
        assert replies[0].erased


async def test_c3_2_6_feedback_logged_for_a_caller_while_they_are_erased_is_erased_too(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staff log a call while a colleague erases the caller: the new ticket was filed
    for the record being erased (found by phone number), and kept their words and id."""

    await _log_call(container, "First call: the kettle leaks.", "a" * 32)
    customer = await _customer(container, Channel.PHONE, "+8613800138000")
    words = "Second call: and the lid burnt my hand, flat 12B."
    raised: list[BaseException] = []
    real_delete = container.repos.customers.delete

    async def deleting(*args: Any) -> Any:  # the erasure's last step: the call is logged now
        try:
            await _log_call(container, words, "b" * 32)
        except CustomerErased as exc:
            raised.append(exc)
        return await real_delete(*args)

    monkeypatch.setattr(container.repos.customers, "delete", deleting)
    report = await container.privacy.erase(customer, by="staff-1")
    assert report.removed.get("customers") == 1
    assert len(raised) == 1  # the console says so (tests/console)
    stored = await everything_stored(container)
    assert words not in stored
    assert customer.id not in stored
    assert "+8613800138000" not in stored


async def test_c3_2_6_a_customer_back_after_an_erasure_that_stopped_starts_afresh(
    container: Container, monkeypatch: pytest.MonkeyPatch, clock: FixedClock
) -> None:
    """The process erasing them died half-way: the record stays marked until the
    retention job's next round (hourly). Meanwhile all they wrote was taken back and
    answered "your data has been deleted". Now their first input finishes it."""
    dave = Chat(container, "dave-7102", locale="en")
    await dave.happy_path()
    customer = await _customer(container, Channel.TELEGRAM, dave.user)

    await _stall_erasure(container, customer, monkeypatch)
    clock.advance(minutes=6)  # longer than an erasure can take: it stopped
    await dave.command(Command.START)
    assert dave.step == "notice", dave.last
    (told,) = await dave.choose("yes")  # processing consent: the marked record, taken back
    assert told.erased
    assert customer.id not in await everything_stored(container)  # finished now
    await dave.command(Command.START)
    await dave.choose("yes")
    assert dave.step == "expanded_use", dave.last  # a new customer record, kept


async def test_c3_2_6_a_request_logged_as_the_erasure_ends_does_not_keep_their_id(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "See my data" on one device had read the customer when the erasure from another
    ended: the request it logged kept the erased customer's id."""
    erin = Chat(container, "erin-7103", locale="en")
    await erin.happy_path()
    customer = await _customer(container, Channel.TELEGRAM, erin.user)
    await erin.command(Command.PRIVACY)
    storing, gate = asyncio.Event(), asyncio.Event()
    real_add = container.repos.privacy_requests.add

    async def held_add(request: Any) -> Any:
        if request.kind is PrivacyRequestKind.ACCESS:
            storing.set()  # the menu has read the customer
            await gate.wait()
        return await real_add(request)

    monkeypatch.setattr(container.repos.privacy_requests, "add", held_add)
    seeing = asyncio.create_task(erin.choose("see"))
    await asyncio.wait_for(storing.wait(), 10)
    report = await container.privacy.erase(customer)
    assert report.removed.get("customers") == 1
    gate.set()
    replies = await asyncio.wait_for(seeing, 10)
    assert replies[0].erased  # told their data is deleted
    assert customer.id not in await everything_stored(container)


async def test_c3_2_6_an_erased_form_customer_leaves_no_form_key_on_the_ticket(
    container: Container,
) -> None:
    """A form's key (and a logged call's) is the customer's identity on that channel;
    the anonymous ticket kept it as its filing key."""
    form_id = "f" * 32
    customer = await container.repos.customers.get_or_create(Channel.FORM, form_id, "en")
    await container.tickets.file(
        customer,
        Channel.FORM,
        {"category": "product_quality", "rating": 3, "text": "The lid cracks."},
        flow_id=f"form:{form_id}",
    )
    await container.privacy.erase(customer, by="staff-1")
    assert form_id not in await everything_stored(container)


async def test_c3_2_6_a_correction_after_the_erasure_read_the_ticket_is_refused(
    container: Container,
) -> None:
    """A correction read the ticket as theirs, then the erasure anonymized it: the
    correction is refused, not added to the anonymous ticket."""
    erin = Chat(container, "erin-3003", locale="en")
    await erin.happy_path()
    customer = await _customer(container, Channel.TELEGRAM, erin.user)
    (ticket,) = await container.repos.tickets.all_for_customer(customer.id)
    await container.repos.tickets.anonymize(ticket.id, at=ticket.created_at, forget_customer=False)
    correction = "Erin: it was the blue one, order 5512."
    with pytest.raises(privacy_service.NotTheirs):  # read after: refused at the read
        await container.privacy.correct_ticket(customer, ticket.id, correction)
    refused = await container.repos.tickets.add_correction(
        ticket.id,
        Correction(at=ticket.created_at, text=correction),
        TimelineEvent(at=ticket.created_at, kind="corrected", actor="customer"),
    )
    assert not refused  # the write itself refuses it too (read before the anonymizing)
    assert correction not in await everything_stored(container)


async def test_c3_2_6_a_stalled_erasure_finished_twice_at_once_spares_the_new_customer(
    container: Container, monkeypatch: pytest.MonkeyPatch, clock: FixedClock
) -> None:
    """The retention job resumed a stalled erasure while the customer wrote again, which
    finished it too: two runs of one erasure. The first to end let the customer start
    afresh; the slower one then deleted the new customer's dialogue by its key."""
    dave = Chat(container, "dave-9001", locale="en")
    await dave.happy_path()
    old = await _customer(container, Channel.TELEGRAM, dave.user)
    await _stall_erasure(container, old, monkeypatch)
    clock.advance(minutes=61)  # the retention round comes
    key = conversation_key(Channel.TELEGRAM.value, dave.user)
    reached, gate = asyncio.Event(), asyncio.Event()
    real_erase = container.repos.conversations.erase

    async def slow_erase(conversation_id: str) -> int:
        if not reached.is_set():  # the retention's run, slow here (topics, load)
            reached.set()
            await gate.wait()
        return await real_erase(conversation_id)

    monkeypatch.setattr(container.repos.conversations, "erase", slow_erase)
    resumed = asyncio.create_task(container.privacy.finish_pending())
    await asyncio.wait_for(reached.wait(), 10)
    await dave.command(Command.START)
    (told,) = await dave.choose("yes")  # the marked record: being finished right now
    assert told.erased
    gate.set()
    await asyncio.wait_for(resumed, 10)
    await dave.command(Command.START)  # afresh: a new customer
    for value in ("yes", "yes", "yes", "logistics", "2"):
        await dave.choose(value)
    assert dave.step == "text", dave.last
    new = await _customer(container, Channel.TELEGRAM, dave.user)
    assert new.id != old.id
    assert await container.privacy.erase(old) is not None  # a late run: nothing of theirs
    assert await container.repos.conversations.get(key) is not None  # their draft stays


async def test_c3_2_6_a_call_refused_while_the_caller_is_erased_leaves_no_ticket(
    container: Container,
) -> None:
    """The console says "nothing was recorded", but the ticket had been filed and only
    anonymized: an empty one waited in the staff queue, one more per try."""
    await _log_call(container, "First call: the kettle leaks.", "a" * 32)
    caller = await _customer(container, Channel.PHONE, "+8613800138000")
    before = (await container.tickets.queue(QueueFilters())).total
    await container.repos.customers.update_fields(
        caller.id, erasing_since=container.privacy.clock()
    )
    for flow in ("b" * 32, "c" * 32):
        with pytest.raises(CustomerErased):
            await _log_call(container, "Second call: the lid burnt my hand.", flow)
    assert (await container.tickets.queue(QueueFilters())).total == before


async def test_c3_2_6_a_filing_refused_as_the_erasure_ran_leaves_no_figures(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An erasure ran between a call's ticket and its acknowledgement: it anonymized the
    new ticket, and so counted it in the analytics; the filing then deleted the ticket,
    and an open ticket that nobody can answer stayed in the figures."""
    await _log_call(container, "First call: the kettle leaks.", "a" * 32)
    caller = await _customer(container, Channel.PHONE, "+8613800138000")
    real_append = container.repos.messages.append
    seen: list[Ticket] = []

    async def append(message: Message) -> Any:
        if message.kind == "ack" and not seen:
            ticket = await container.repos.tickets.get(message.ticket_id or "")
            assert ticket is not None
            seen.append(ticket)
            await container.privacy.erase(caller, by="staff-1")  # elsewhere, at this moment
        return await real_append(message)

    monkeypatch.setattr(container.repos.messages, "append", append)
    with pytest.raises(CustomerErased):
        await _log_call(container, "Second call: the lid burnt my hand.", "b" * 32)
    (new,) = seen
    assert await container.repos.tickets.get(new.id) is None
    assert new.analytics_id is not None
    assert await container.database.db["analytics"].find_one({"_id": new.analytics_id}) is None
