"""The whole feedback dialogue through the services, against the real database."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError

from bot.app import Container
from bot.config import Settings
from bot.domain.flow import Command, Facts, Input
from bot.domain.models import (
    RECENT_INPUTS,
    Attachment,
    Channel,
    ConsentPurpose,
    Conversation,
    Customer,
    TicketStatus,
)
from bot.domain.privacy import NOTICE_VERSION, conversation_key, text_hash
from bot.services.dialogue import Rendered
from bot.storage import DatabaseUnavailable
from tests.services.chat import Chat
from tests.support import FixedClock, RecordingSender

REFERENCE = re.compile(r"FB-\d{4}-\d{6}")


async def test_c3_1_3_happy_path_in_english_files_and_acknowledges(
    container: Container, sender: RecordingSender
) -> None:
    chat = Chat(container, "1001", locale="en-US")
    replies = await chat.command(Command.START)
    assert "privacy notice" in replies[0].text
    assert [o.label for o in replies[0].options] == ["I agree", "I do not agree"]
    assert [c.value for c in replies[0].controls] == ["cmd:cancel", "cmd:help"]
    await chat.happy_path()
    assert chat.last == []  # the acknowledgement goes out through delivery, not as a prompt

    await container.delivery.drain()
    (ack,) = sender.sent
    assert ack.kind == "ack"
    reference = REFERENCE.search(ack.text)
    assert reference is not None
    # Filed Mon 2 Mar 2026 10:00 Shanghai; 3 working days later is Thu 5 Mar.
    assert "March 5, 2026" in ack.text
    assert "3 working days" in ack.text

    ticket = await container.repos.tickets.by_reference(reference.group())
    assert ticket is not None
    assert ticket.status is TicketStatus.ACKNOWLEDGED
    assert ticket.category.value == "logistics"
    assert ticket.rating == 2
    assert ticket.text == "The parcel arrived two days late."
    assert ticket.locale == "en"
    assert [e.to_status for e in ticket.events if e.kind == "status"] == [TicketStatus.ACKNOWLEDGED]


async def test_c3_1_3_happy_path_in_chinese(container: Container, sender: RecordingSender) -> None:
    chat = Chat(container, "2002", locale="zh-hans")
    replies = await chat.command(Command.START)
    assert "隐私告知" in replies[0].text
    await chat.happy_path("快递晚到了两天，包装也破了。")
    await container.delivery.drain()
    (ack,) = sender.sent
    assert "感谢您的反馈" in ack.text
    assert "2026年3月5日" in ack.text
    assert REFERENCE.search(ack.text)


async def test_c6_2_consents_are_recorded_with_version_and_text_hash(
    container: Container,
) -> None:
    chat = Chat(container, "3003", locale="en")
    notice = (await chat.command(Command.START))[0].text
    await chat.choose("yes")
    await chat.choose("no")  # expanded use: declined (C3.1.7)
    await chat.choose("yes")
    customer = await container.repos.customers.find(Channel.TELEGRAM, "3003")
    assert customer is not None
    ledger = await container.repos.consents.history(customer.id)
    assert [(r.purpose, r.granted) for r in ledger] == [
        (ConsentPurpose.PROCESSING, True),
        (ConsentPurpose.EXPANDED_USE, False),
        (ConsentPurpose.LICENCE, True),
    ]
    assert all(r.notice_version == NOTICE_VERSION for r in ledger)
    assert ledger[0].text_hash == text_hash(notice)
    assert {r.locale for r in ledger} == {"en"}


async def test_c6_2_declining_the_notice_keeps_nothing_but_a_count(
    container: Container, clock: FixedClock
) -> None:
    chat = Chat(container, "4004", locale="en")
    await chat.command(Command.START)
    replies = await chat.choose("no")
    assert "kept nothing about you" in replies[0].text
    repos = container.repos
    assert await repos.customers.collection.count_documents({}) == 0
    assert await repos.consents.collection.count_documents({}) == 0
    assert await repos.conversations.collection.count_documents({}) == 0
    assert await repos.refusals.count(container.tickets.calendar.local_date(clock())) == 1
    refusal = await repos.refusals.collection.find_one({})
    assert refusal is not None
    assert set(refusal) == {"_id", "day", "channel"}


async def test_every_validation_error_is_explained_and_reasked(container: Container) -> None:
    chat = Chat(container, "5005", locale="en")
    await chat.command(Command.START)
    await chat.text("whatever")
    assert chat.error == "Please choose one of the options."
    for value in ("yes", "yes", "yes"):
        await chat.choose(value)
    await chat.choose("not-a-category")
    assert chat.step == "category"
    assert chat.error
    await chat.choose("price")
    await chat.text("11")
    assert chat.error == "Please choose a rating from 1 to 5."
    await chat.text("4")
    await chat.text("meh")
    assert chat.error == "That is too short: please write at least 5 characters."
    await chat.text("x" * 4001)
    assert chat.error == "That is too long: please keep it to 4000 characters (this one has 4001)."
    await chat.file(Attachment(kind="photo", file_ref="p1"))
    assert chat.error == "Please write your feedback as a text message."
    await chat.text("Prices went up again.")
    await chat.text("hello")
    assert chat.error == "Please send a photo or a file, or choose Done."
    await chat.choose("done")
    await chat.text("call me maybe")
    assert chat.error is not None
    assert "e-mail address or a phone number" in chat.error
    await chat.text("13800138000")
    assert chat.step == "summary"
    assert "13800138000" in chat.last[-1].text


async def test_back_and_edit(container: Container, sender: RecordingSender) -> None:
    chat = Chat(container, "6006", locale="en")
    await chat.command(Command.START)
    for value in ("yes", "yes", "yes", "price", "1"):
        await chat.choose(value)
    await chat.command(Command.BACK)
    assert chat.step == "rating"
    await chat.choose("2")
    await chat.text("Too expensive for what it is.")
    await chat.choose("done")
    await chat.text("li@example.cn")
    await chat.choose("edit:category")
    assert chat.step == "category"
    await chat.choose("product_quality")
    assert chat.step == "summary"
    assert "Product quality" in chat.last[-1].text
    await chat.choose("submit")
    await container.delivery.drain()
    ticket = await container.repos.tickets.collection.find_one({})
    assert ticket is not None
    assert ticket["category"] == "product_quality"
    assert ticket["rating"] == 2
    customer = await container.repos.customers.find(Channel.TELEGRAM, "6006")
    assert customer is not None
    assert customer.email == "li@example.cn"  # C6.1: only because they chose to give it


async def test_cancel_files_nothing(container: Container) -> None:
    chat = Chat(container, "7007", locale="en")
    await chat.command(Command.START)
    for value in ("yes", "yes", "yes", "price"):
        await chat.choose(value)
    replies = await chat.command(Command.CANCEL)
    assert "Nothing was sent" in replies[0].text
    assert await container.repos.tickets.collection.count_documents({}) == 0
    # Starting again skips the consents already given under this notice version.
    replies = await chat.command(Command.START)
    assert chat.step == "category"


async def test_a_flow_resumes_after_a_restart(
    container: Container, settings: Settings, mongo_uri: str, clock: FixedClock
) -> None:
    chat = Chat(container, "8008", locale="en")
    await chat.command(Command.START)
    for value in ("yes", "no", "yes", "after_sales", "3"):
        await chat.choose(value)
    assert chat.step == "text"
    await container.close()

    # A new process: new clients and services over the same database.
    restarted = Container.build(settings, mongo_uri, clock=clock)
    sender = RecordingSender()
    restarted.delivery.register(Channel.TELEGRAM, sender)
    try:
        chat = Chat(restarted, "8008", locale="en")
        await chat.text("The repair took three weeks.")
        assert chat.step == "attachments"
        await chat.choose("done")
        await chat.choose("skip")
        assert "After-sales service" in chat.last[-1].text
        await chat.choose("submit")
        await restarted.delivery.drain()
        assert len(sender.sent) == 1
        ticket = await restarted.repos.tickets.collection.find_one({})
        assert ticket is not None
        assert ticket["expanded_use"] is False
    finally:
        await restarted.close()


async def test_status_and_messages_after_filing(
    container: Container, sender: RecordingSender
) -> None:
    chat = Chat(container, "9009", locale="en")
    replies = await container.dialogue.status(Channel.TELEGRAM, "9009", "en")
    assert "not sent us any feedback" in replies[0].text
    await chat.happy_path()
    replies = await container.dialogue.status(Channel.TELEGRAM, "9009", "en")
    assert REFERENCE.search(replies[0].text)
    assert "Delivery and logistics" in replies[0].text
    assert "acknowledged" in replies[0].text

    # Free text after a ticket exists is added to it, not the start of a new flow.
    replies = await chat.text("Also, the courier was rude.")
    assert "Added to your feedback" in replies[0].text
    ticket = await container.repos.tickets.collection.find_one({})
    assert ticket is not None
    messages = await container.repos.messages.for_ticket(ticket["_id"])
    inbound = [m for m in messages if m.direction.value == "in"]
    assert [m.text for m in inbound] == ["Also, the courier was rude."]


async def test_language_can_change_mid_flow(container: Container) -> None:
    chat = Chat(container, "1111", locale="en")
    await chat.command(Command.START)
    await chat.choose("yes")
    replies = await container.dialogue.set_language(Channel.TELEGRAM, "1111", "zh_CN")
    assert replies[0].text == "语言已切换为中文。"
    assert replies[1].step == "expanded_use"
    assert "市场分析" in replies[1].text
    replies = await chat.choose("no")
    assert "许可" in replies[0].text


async def test_one_ticket_per_flow_even_if_the_submit_is_retried(container: Container) -> None:
    chat = Chat(container, "1212", locale="en")
    await chat.happy_path()
    key = conversation_key(Channel.TELEGRAM.value, "1212")
    conversation = await container.repos.conversations.get(key)
    assert conversation is not None
    assert conversation.step is None
    # A submit that is processed again (a retried delivery of the same update)
    # starts a fresh flow instead of filing twice.
    await chat.choose("submit")
    assert await container.repos.tickets.collection.count_documents({}) == 1


@pytest.mark.parametrize("locale", ["en", "zh_CN"])
async def test_help_outside_a_flow(container: Container, locale: str) -> None:
    replies = await Chat(container, f"h-{locale}", locale=locale).command(Command.HELP)
    assert "/start" in replies[0].text


async def test_an_input_delivered_twice_is_applied_once(container: Container) -> None:
    """A channel may deliver the same input again after a failure; it must not answer twice."""
    chat = Chat(container, "3003", locale="en")
    await chat.command(Command.START)
    for value in ("yes", "yes", "yes", "logistics"):
        await chat.choose(value)
    assert chat.step == "rating"
    dialogue = container.dialogue
    first = await dialogue.handle(
        Channel.TELEGRAM, "3003", Input.choice("4"), idempotency_key="update-7"
    )
    assert first[-1].step == "text"
    again = await dialogue.handle(
        Channel.TELEGRAM, "3003", Input.text("4"), idempotency_key="update-7"
    )
    assert [r.step for r in again] == ["text"]  # the current question, shown again
    conversation = await container.repos.conversations.get(conversation_key("telegram", "3003"))
    assert conversation is not None
    assert conversation.step == "text"
    assert conversation.answers["rating"] == 4
    assert "text" not in conversation.answers


async def test_a_late_copy_of_an_input_after_later_ones_is_not_applied_again(
    container: Container,
) -> None:
    """A copy of an input that arrives after later inputs (its first delivery was slow,
    the widget sent it again, and the customer went on) changes nothing: a late /start
    used to restart the flow and drop the answers given since."""
    dialogue = container.dialogue

    async def send(inp: Input, key: str) -> list[Rendered]:
        return await dialogue.handle(Channel.WIDGET, "visitor:late", inp, idempotency_key=key)

    await send(Input.command(Command.START), "start-1")
    for n, value in enumerate(("yes", "yes", "yes")):
        await send(Input.choice(value), f"consent-{n}")
    await send(Input.choice("logistics"), "category-1")
    again = await send(Input.command(Command.START), "start-1")  # the late copy
    assert [r.step for r in again] == ["rating"]  # where they are, shown again
    conversation = await container.repos.conversations.get(
        conversation_key("widget", "visitor:late")
    )
    assert conversation is not None
    assert conversation.step == "rating"
    assert conversation.answers["category"] == "logistics"
    assert conversation.recent_inputs[-2:] == ["consent-2", "category-1"]


def test_a_dialogue_remembers_a_bounded_number_of_recent_inputs() -> None:
    conversation = Conversation(id="widget:visitor:x", locale="en")
    for n in range(RECENT_INPUTS + 5):
        conversation = conversation.made_by(f"key-{n}")
    assert len(conversation.recent_inputs) == RECENT_INPUTS
    assert conversation.applied(f"key-{RECENT_INPUTS + 4}")
    assert conversation.applied("key-5")
    assert not conversation.applied("key-4")  # forgotten: older than the window
    assert not conversation.applied(None)


async def test_an_answer_refused_as_stale_records_no_consent(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two devices answer the same consent question at once: the one that loses the
    dialogue's next version records nothing (it used to record its answer, then lose)."""
    dialogue = container.dialogue

    async def send(inp: Input, key: str) -> list[Rendered]:
        return await dialogue.handle(Channel.WIDGET, "visitor:two", inp, idempotency_key=key)

    await send(Input.command(Command.START), "start")
    at = await send(Input.choice("yes", step="notice"), "notice")
    assert at[-1].step == "expanded_use"
    real_facts = dialogue._facts
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow_facts(customer: Customer | None) -> Facts:
        facts = await real_facts(customer)
        if not entered.is_set():  # the phone's answer only: read, then slow
            entered.set()
            await release.wait()
        return facts

    monkeypatch.setattr(dialogue, "_facts", slow_facts)
    phone = asyncio.create_task(send(Input.choice("yes", step="expanded_use"), "phone"))
    await asyncio.wait_for(entered.wait(), 10)
    await send(Input.choice("no", step="expanded_use"), "laptop")  # answered first
    release.set()
    await phone
    customer = await container.repos.customers.find(Channel.WIDGET, "visitor:two")
    assert customer is not None
    current = await container.repos.consents.current(customer.id)
    assert current[ConsentPurpose.EXPANDED_USE].granted is False
    history = await container.repos.consents.history(customer.id)
    assert [r.granted for r in history if r.purpose is ConsentPurpose.EXPANDED_USE] == [False]


async def _at_the_notice(container: Container, who: str) -> None:
    await container.dialogue.handle(
        Channel.WIDGET, who, Input.command(Command.START), idempotency_key=f"{who}:start"
    )


async def _answer_the_notice(container: Container, who: str) -> None:
    await container.dialogue.handle(
        Channel.WIDGET, who, Input.choice("yes", step="notice"), idempotency_key=f"{who}:notice"
    )


async def test_a_connection_lost_at_a_steps_claim_is_database_unavailable(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A passing failure, which channels try again (Telegram gives up on any other)."""
    await _at_the_notice(container, "v1")
    claims = container.repos.conversations.claims.collection

    async def dropped(*args: object, **kwargs: object) -> None:
        raise AutoReconnect("connection reset")

    monkeypatch.setattr(claims, "insert_one", dropped)
    with pytest.raises(DatabaseUnavailable):
        await _answer_the_notice(container, "v1")


async def test_an_effect_failing_with_the_database_stays_database_unavailable(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim given back after a failed effect may fail too; its error must not
    replace the effect's."""
    await _at_the_notice(container, "v2")

    async def effect_down(*args: object, **kwargs: object) -> None:
        raise DatabaseUnavailable(ServerSelectionTimeoutError("no server"))

    async def give_back_down(*args: object, **kwargs: object) -> None:
        raise ServerSelectionTimeoutError("no server")

    monkeypatch.setattr(container.dialogue.consents, "record", effect_down)
    claims = container.repos.conversations.claims.collection
    monkeypatch.setattr(claims, "delete_one", give_back_down)
    with pytest.raises(DatabaseUnavailable):
        await _answer_the_notice(container, "v2")


async def test_a_steps_write_that_found_no_server_gives_its_claim_back(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tried again at once, the step goes through (not refused for the claim's 30 s)."""
    await _at_the_notice(container, "v3")
    conversations = container.repos.conversations.collection
    real = conversations.replace_one
    failures = [ServerSelectionTimeoutError("no server")]

    async def once_no_server(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real(*args, **kwargs)

    monkeypatch.setattr(conversations, "replace_one", once_no_server)
    inp = Input.choice("yes", step="notice")
    with pytest.raises(DatabaseUnavailable):
        await container.dialogue.handle(Channel.WIDGET, "v3", inp, idempotency_key="v3:notice")
    replies = await container.dialogue.handle(
        Channel.WIDGET, "v3", inp, idempotency_key="v3:notice"
    )
    assert replies[-1].step == "expanded_use"


async def test_words_onto_a_ticket_say_where_the_customer_is_as_current_does(
    container: Container,
) -> None:
    chat = Chat(container, "9010", locale="zh_CN")
    await chat.happy_path()
    dialogue = container.dialogue
    handled = await dialogue.handle_input(
        Channel.TELEGRAM, "9010", Input.text("还有一件事。"), idempotency_key="k-1"
    )
    assert handled.stored is not None
    assert handled.stored.created
    assert handled.where == await dialogue.current(Channel.TELEGRAM, "9010")
    assert handled.where == ("zh_CN", None)


def _customer_reads(container: Container) -> float:
    """Look-ups of a customer so far, by id or by channel identity (the service's timer)."""
    return sum(
        sample.value
        for metric in container.metrics.registry.collect()
        if metric.name == "feedback_database_command_seconds"
        for sample in metric.samples
        if sample.name.endswith("_count")
        and sample.labels.get("command") == "find"
        and sample.labels.get("collection") in ("customers", "customer_keys")
    )


async def test_a_step_inside_the_flow_with_nothing_to_record_does_not_read_the_customer(
    container: Container,
) -> None:
    chat = Chat(container, "1313", locale="en")
    await chat.command(Command.START)
    for consent in ("yes", "yes", "yes"):
        await chat.choose(consent)
    assert chat.step == "category"
    before = _customer_reads(container)
    await chat.choose("logistics")
    await chat.choose("2")
    await chat.text("The parcel came two days late.")
    assert _customer_reads(container) == before  # one database command less per step
    await chat.choose("done")
    await chat.choose("skip")
    await chat.choose("submit")  # filing needs them
    assert _customer_reads(container) > before
    assert await container.repos.tickets.collection.count_documents({}) == 1
