"""The Telegram channel end to end: the real service and a real aiogram Bot, talking HTTP to a
fake Bot API server that plays Telegram and a scripted customer (Telegram is out of reach)."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.dispatcher.event.handler import CallableObject
from aiogram.dispatcher.event.telegram import TelegramEventObserver
from aiogram.methods import AnswerCallbackQuery, GetUpdates, SendMessage
from aiogram.methods.base import Response, TelegramMethod

from bot.admission import Admission
from bot.channels.telegram import WebhookHandler, get_routers
from bot.channels.telegram.responses import response_models
from bot.config import Settings
from bot.domain.models import (
    Channel,
    ConsentPurpose,
    DeliveryState,
    Direction,
    Message,
    TicketStatus,
    utcnow,
)
from bot.domain.privacy import EXPORT_FORMAT
from bot.metrics import Metrics
from bot.storage.locks import Claim
from tests.channels.service import Service
from tests.channels.telegram import TelegramCustomer, running, telegram_settings
from tests.fake_telegram import Call, FakeTelegram
from tests.support import eventually

REFERENCE = re.compile(r"FB-\d{4}-\d{6}")
STAFF_GROUP = -1001234567890
STAFF_MEMBER = 777


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def service(settings: Settings, fake: FakeTelegram) -> AsyncIterator[Service]:
    async with running(telegram_settings(settings, fake), fake) as started:
        yield started


async def topic_and_card(fake: FakeTelegram) -> tuple[Call, list[Call]]:
    """The ticket's staff topic as it was made, and the card posted in it."""
    (created,) = await fake.wait_for("createForumTopic")
    topic = created.result["message_thread_id"]
    card = await fake.wait_for(
        lambda c: c.method == "sendMessage" and c.params.get("message_thread_id") == topic
    )
    return created, card


def sent_to(chat_id: int, needle: str) -> Callable[[Call], bool]:
    def match(call: Call) -> bool:
        return (
            call.method == "sendMessage"
            and not call.failed
            and call.chat_id == chat_id
            and needle in call.params.get("text", "")
        )

    match.__name__ = f"sendMessage to {chat_id} containing {needle!r}"
    return match


async def settled(fake: FakeTelegram) -> None:
    """Wait until the bot has fetched and confirmed everything queued (two more long polls)."""
    before = len(fake.calls_of("getUpdates"))
    await fake.wait_for("getUpdates", count=before + 2)
    assert fake.pending_updates == []


async def settled_message(service: Service, message_id: str) -> Message:
    """The outbound message once delivery is done with it (sent or undeliverable)."""
    messages = service.container.repos.messages

    async def settled() -> Message | None:
        stored = await messages.get(message_id)
        return None if stored is None or stored.delivery.state is DeliveryState.PENDING else stored

    return await eventually(settled, f"message {message_id} to be settled", timeout=30)


async def messages_of(service: Service, ticket_id: str, direction: Direction) -> list[str]:
    messages = await service.container.repos.messages.for_ticket(ticket_id)
    return [m.text for m in messages if m.direction is direction]


@pytest.mark.parametrize(
    ("language_code", "notice", "due_words"),
    [("en", "privacy notice", "3 working days"), ("zh-hans", "隐私告知", "3 个工作日")],
)
async def test_c3_1_3_a_customer_gives_feedback_and_gets_reference_and_due_date(
    fake: FakeTelegram, service: Service, language_code: str, notice: str, due_words: str
) -> None:
    customer = TelegramCustomer(fake, service, 5001, language_code)
    await customer.command("start")
    assert notice in customer.texts()[0]

    ticket = await customer.give_feedback("The parcel arrived two days late.")
    assert ticket.category.value == "logistics"
    assert ticket.rating == 2
    assert ticket.text == "The parcel arrived two days late."
    assert ticket.locale == ("en" if language_code == "en" else "zh_CN")

    container = service.container
    due = container.i18n.format_date(
        ticket.locale, container.tickets.calendar.local_date(ticket.response_due)
    )
    (ack,) = await fake.wait_for(sent_to(customer.user_id, ticket.reference))
    assert due in ack.params["text"]
    assert due_words in ack.params["text"]
    stored = await container.repos.tickets.get(ticket.id)
    assert stored is not None
    assert stored.status is TicketStatus.ACKNOWLEDGED

    # Every button press was answered, and the pressed prompt lost its buttons.
    assert len(fake.calls_of("answerCallbackQuery")) == 8
    assert len(fake.calls_of("editMessageReplyMarkup")) == 8


async def test_the_command_menu_is_set_in_both_languages(
    fake: FakeTelegram, service: Service
) -> None:
    scope = {"type": "all_private_chats"}
    zh = fake.commands("zh", scope)
    en = fake.commands("en", scope)
    default = fake.commands("", scope)
    assert zh is not None
    assert en is not None
    assert default is not None
    assert [c["command"] for c in zh] == ["start", "status", "language", "privacy", "help"]
    assert zh[0]["description"] == "提交反馈"
    assert en[0]["description"] == "Give feedback"
    assert default == zh  # the default language of the service is zh_CN


async def test_attachments_are_taken_in_the_flow(fake: FakeTelegram, service: Service) -> None:
    customer = TelegramCustomer(fake, service, 5002)
    await customer.command("start")
    for value in ("yes", "no", "yes", "product_quality", "1"):
        await customer.press(value)
    await customer.says("The handle broke on the first day.")
    assert await customer.step() == "attachments"
    await customer.handled(fake.user_photo(customer.user_id, "photo-1"))
    await customer.handled(
        fake.user_document(customer.user_id, "doc-1", "receipt.pdf", "application/pdf")
    )
    for value in ("done", "skip", "submit"):
        await customer.press(value)
    ticket = await customer.ticket()
    assert [(a.kind, a.file_ref, a.name) for a in ticket.attachments] == [
        ("photo", "photo-1", None),
        ("document", "doc-1", "receipt.pdf"),
    ]
    assert ticket.expanded_use is False


async def test_a_duplicate_update_changes_nothing(fake: FakeTelegram, service: Service) -> None:
    customer = TelegramCustomer(fake, service, 5003)
    await customer.command("start")
    for value in ("yes", "yes", "yes", "price", "3"):
        await customer.press(value)
    words = await customer.says("Too expensive for what it is.")
    assert await customer.step() == "attachments"
    replies = len(customer.texts())

    fake.repush(words["update_id"])  # Telegram delivers the same update again
    await settled(fake)
    assert await customer.step() == "attachments"
    assert len(customer.texts()) == replies

    for value in ("done", "skip", "submit"):
        await customer.press(value)
    ticket = await customer.ticket()
    more = await customer.says("And the box was dented.")
    fake.repush(more["update_id"])
    await settled(fake)
    inbound = await messages_of(service, ticket.id, Direction.INBOUND)
    assert inbound == ["And the box was dented."]


async def test_an_update_claimed_by_a_process_that_died_is_handled_once_the_claim_runs_out(
    fake: FakeTelegram, service: Service
) -> None:
    # A process took this update and was killed before it was done; Telegram delivers it
    # again (to a restarted process). It must be handled then, not dropped as "being
    # handled elsewhere" (which lost it before): once the dead claim runs out.
    update = fake.user_command(5011, "help", push=False)
    key = f"telegram:{fake.bot_id}:{update['update_id']}"
    dead = {"_id": key, "at": utcnow(), "until": utcnow() + timedelta(seconds=2), "owner": "x"}
    await service.container.repos.inbound.collection.insert_one(dead)
    fake.push_update(update)
    await fake.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 5011, timeout=30)
    await settled(fake)
    assert len([c for c in fake.calls_of("sendMessage") if c.chat_id == 5011]) == 1
    assert await service.container.repos.inbound.seen(key)


async def test_an_update_handled_longer_than_its_claim_is_not_taken_over(
    fake: FakeTelegram, settings: Settings
) -> None:
    claim = timedelta(seconds=1.5)
    slow = telegram_settings(settings, fake, telegram_update_claim_seconds=1.5)
    async with running(slow, fake) as service:
        release = fake.hold("sendMessage", chat_id=5012)  # the Bot API hangs on the answer
        update_id = fake.push_update(fake.user_command(5012, "help", push=False))
        await fake.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 5012)
        await asyncio.sleep(3 * claim.total_seconds())  # the claim's time passes twice over
        # Another process that got this update now (a webhook redelivery) must wait for it.
        key = f"telegram:{fake.bot_id}:{update_id}"
        inbound = service.container.repos.inbound
        assert await inbound.claim(key, claim) is Claim.BUSY
        release.set()

        async def handled() -> bool | None:
            return await inbound.seen(key) or None

        await eventually(handled, "the update marked handled")
        assert len([c for c in fake.calls_of("sendMessage") if c.chat_id == 5012]) == 1


async def test_c3_2_6_an_export_whose_file_failed_to_send_is_made_again_when_retried(
    fake: FakeTelegram, service: Service
) -> None:
    customer = TelegramCustomer(fake, service, 5013)
    await customer.give_feedback("The lid does not close.")
    await customer.command("privacy")
    # The answer that carries the file fails (Telegram's 5xx): the update is handled again,
    # and the input it carried was applied already.
    fake.fail_next("sendDocument", error_code=502, chat_id=customer.user_id)
    await customer.press("export")
    sent = await fake.wait_for(
        lambda c: c.method == "sendDocument" and c.chat_id == customer.user_id and not c.failed,
        timeout=30,
    )
    exported = json.loads(sent[0].uploads["document"].content.decode("utf-8"))
    assert exported["format"] == EXPORT_FORMAT
    assert exported["tickets"][0]["text"] == "The lid does not close."
    assert len([c for c in fake.calls_of("sendDocument") if c.failed]) == 1


async def test_staff_replies_and_status_changes_reach_the_customer(
    fake: FakeTelegram, service: Service
) -> None:
    customer = TelegramCustomer(fake, service, 5004)
    ticket = await customer.give_feedback("The courier was rude.")
    tickets = service.container.tickets
    await tickets.staff_reply(ticket.id, staff_id="agent-1", text="We are sorry; we will check.")
    await fake.wait_for(sent_to(customer.user_id, "We are sorry; we will check."))
    await tickets.change_status(ticket.id, TicketStatus.IN_PROGRESS, actor="agent-1")
    await fake.wait_for(sent_to(customer.user_id, ticket.reference + ": in progress"))


async def test_c3_2_2_a_429_storm_delays_but_loses_nothing(
    fake: FakeTelegram, service: Service
) -> None:
    customer = TelegramCustomer(fake, service, 5005)
    ticket = await customer.give_feedback("Late again.")
    await fake.wait_for(sent_to(customer.user_id, ticket.reference))  # the acknowledgement
    fake.fail_next("sendMessage", error_code=429, retry_after=1, times=5, chat_id=customer.user_id)
    replies = [f"Reply number {n}." for n in range(1, 4)]
    sent = [
        await service.container.tickets.staff_reply(ticket.id, staff_id="agent-1", text=text)
        for text in replies
    ]
    for text in replies:
        await fake.wait_for(sent_to(customer.user_id, text), timeout=30)
    assert len([c for c in fake.calls_of("sendMessage") if c.error_code == 429]) == 5
    for text in replies:  # each delivered exactly once
        assert sum(text in t for t in customer.texts()) == 1
    for message in sent:
        stored = await settled_message(service, message.id)
        assert stored.delivery.state is DeliveryState.SENT
        assert stored.delivery.attempts == 1  # waiting out a 429 uses up no attempt


async def test_a_blocked_bot_marks_the_message_undeliverable(
    fake: FakeTelegram, service: Service
) -> None:
    customer = TelegramCustomer(fake, service, 5006)
    ticket = await customer.give_feedback("Wrong size delivered.")
    await fake.wait_for(sent_to(customer.user_id, ticket.reference))
    fake.fail_next(
        "sendMessage",
        error_code=403,
        description="Forbidden: bot was blocked by the user",
        chat_id=customer.user_id,
    )
    message = await service.container.tickets.staff_reply(
        ticket.id, staff_id="agent-1", text="Can you send a photo of the label?"
    )
    stored = await settled_message(service, message.id)
    assert stored.delivery.state is DeliveryState.UNDELIVERABLE
    assert stored.delivery.attempts == 1
    assert "403" in (stored.delivery.last_error or "")
    await asyncio.sleep(1.5)  # a few dispatcher rounds: it is not tried again
    attempts = [c for c in fake.calls_of("sendMessage") if "label" in c.params.get("text", "")]
    assert len(attempts) == 1


async def test_a_429_on_a_prompt_is_waited_out(fake: FakeTelegram, service: Service) -> None:
    customer = TelegramCustomer(fake, service, 5007)
    fake.fail_next("sendMessage", error_code=429, retry_after=1, chat_id=customer.user_id)
    await customer.command("start")
    assert await customer.step() == "notice"
    assert customer.last_prompt().params["reply_markup"]["inline_keyboard"]


async def test_a_restart_in_the_middle_of_the_flow_resumes_it(
    settings: Settings, fake: FakeTelegram
) -> None:
    configured = telegram_settings(settings, fake)
    async with running(configured, fake) as first:
        customer = TelegramCustomer(fake, first, 5008, "zh-hans")
        await customer.command("start")
        for value in ("yes", "yes", "yes", "service_quality", "4"):
            await customer.press(value)
        assert await customer.step() == "text"
    async with running(configured, fake) as second:
        customer.service = second
        await customer.says("客服很耐心，但是等了很久。")
        for value in ("done", "skip", "submit"):
            await customer.press(value)
        ticket = await customer.ticket()
        assert ticket.category.value == "service_quality"
        assert ticket.rating == 4
        await fake.wait_for(sent_to(customer.user_id, ticket.reference))
    assert len(fake.calls_of("deleteWebhook")) == 2


async def test_stickers_voice_and_locations_get_a_polite_answer(
    fake: FakeTelegram, service: Service
) -> None:
    customer = TelegramCustomer(fake, service, 5009, "zh-hans")
    await customer.command("start")
    before = len(customer.texts())
    await customer.handled(fake.user_sticker(customer.user_id, language_code="zh-hans"))
    await customer.handled(fake.user_voice(customer.user_id, language_code="zh-hans"))
    await customer.handled(fake.user_location(customer.user_id, language_code="zh-hans"))
    answers = customer.texts()[before:]
    assert len(answers) == 3
    assert all("贴纸" in a for a in answers)
    assert await customer.step() == "notice"  # nothing moved


async def test_flooding_gets_one_friendly_notice(settings: Settings, fake: FakeTelegram) -> None:
    # The limiter counts in windows aligned to the clock, weighing the one before: a run
    # across two 60 s windows (1 in 60) let a fourth message through. An hour's window
    # makes that 1 in 3,600.
    configured = telegram_settings(
        settings, fake, telegram_flood_messages=3, telegram_flood_seconds=3600
    )
    async with running(configured, fake) as service:
        customer = TelegramCustomer(fake, service, 5010)
        for _ in range(6):
            await customer.command("help")
        notices = [t for t in customer.texts() if "very quickly" in t]
        assert len(notices) == 1
        assert len(customer.texts()) == 4  # three answers, then the notice, then quiet


async def test_a_backlog_sent_slowly_is_not_taken_for_flooding(
    settings: Settings, fake: FakeTelegram
) -> None:
    """Messages written minutes apart while the service (or its database) was down reach
    it at once afterwards: they are not a flood, and none is dropped."""
    configured = telegram_settings(
        settings, fake, telegram_flood_messages=3, telegram_flood_seconds=3600
    )
    async with running(configured, fake) as service:
        customer = TelegramCustomer(fake, service, 5015)
        written = int(time.time()) - 3 * 3600  # before the window
        backlog = []
        for _ in range(6):
            update = fake.user_command(customer.user_id, "help", push=False)
            update["message"]["date"] = written
            backlog.append(update)
            written += 60
        for update in backlog:  # handed over together, as after an outage
            fake.push_update(update)
        for update in backlog:
            await customer.handled(update)
        assert not [t for t in customer.texts() if "very quickly" in t]
        assert len(customer.texts()) == 6  # every one answered


async def test_a_flood_waiting_behind_a_slow_answer_is_still_a_flood(
    settings: Settings, fake: FakeTelegram
) -> None:
    """Messages sent now, waiting behind the user's first (its answer hangs) longer than
    the window, are counted when they arrived, not taken for a backlog."""
    configured = telegram_settings(
        settings, fake, telegram_flood_messages=2, telegram_flood_seconds=2
    )
    async with running(configured, fake) as service:
        customer = TelegramCustomer(fake, service, 5021)
        release = fake.hold("sendMessage", chat_id=customer.user_id)
        flood = [fake.user_command(customer.user_id, "help", push=False) for _ in range(8)]
        for update in flood:
            fake.push_update(update)
        await asyncio.sleep(3)  # longer than the window
        release.set()
        for update in flood:
            await customer.handled(update)
        answers = [t for t in customer.texts() if "very quickly" not in t]
        assert len(answers) <= 3  # two, and one more across the window's edge at most
        assert [t for t in customer.texts() if "very quickly" in t]


async def test_messages_sent_calmly_behind_a_slow_answer_are_not_a_flood(
    settings: Settings, fake: FakeTelegram
) -> None:
    """One message a second (the limit is 3 in 2 s) while the answer to the first hangs:
    released together afterwards, none is dropped."""
    configured = telegram_settings(
        settings, fake, telegram_flood_messages=3, telegram_flood_seconds=2
    )
    async with running(configured, fake) as service:
        customer = TelegramCustomer(fake, service, 5022)
        release = fake.hold("sendMessage", chat_id=customer.user_id)
        sent = [fake.user_command(customer.user_id, "help")]
        for _ in range(5):
            await asyncio.sleep(1.0)  # a calm pace: 2 a window, the limit is 3
            sent.append(fake.user_command(customer.user_id, "help"))
        await asyncio.sleep(1.0)
        release.set()
        for update in sent:
            await customer.handled(update)
        assert not [t for t in customer.texts() if "very quickly" in t]
        assert len(customer.texts()) == 6


async def test_an_update_handled_again_after_a_failure_is_counted_once_for_flooding(
    settings: Settings, fake: FakeTelegram
) -> None:
    configured = telegram_settings(
        settings, fake, telegram_flood_messages=1, telegram_flood_seconds=3600
    )
    async with running(configured, fake) as service:
        customer = TelegramCustomer(fake, service, 5016)
        # The answer fails past the sender's own tries: the update is handled again.
        fake.fail_next("sendMessage", error_code=502, times=3, chat_id=customer.user_id)
        await customer.command("help")
        assert not [t for t in customer.texts() if "very quickly" in t]
        assert len(customer.texts()) == 1  # answered, on the second try


async def test_staff_work_a_ticket_from_a_forum_topic(
    settings: Settings, fake: FakeTelegram
) -> None:
    configured = telegram_settings(settings, fake, telegram_staff_chat_id=STAFF_GROUP)
    async with running(configured, fake) as service:
        customer = TelegramCustomer(fake, service, 5011)
        ticket = await customer.give_feedback("The app logs me out every day.")
        created, card = await topic_and_card(fake)
        assert created.chat_id == STAFF_GROUP
        assert ticket.reference in created.params["name"]
        topic = created.result["message_thread_id"]
        assert "The app logs me out every day." in card[0].params["text"]
        stored = await service.container.repos.tickets.get(ticket.id)
        assert stored is not None
        assert stored.telegram_topic_id == topic

        # The staff group works in the service's default language (zh_CN here).
        await customer.says("It happens on Android 14.")
        await fake.wait_for(sent_to(STAFF_GROUP, "客户：It happens on Android 14."))

        staff = fake.group_text(
            STAFF_GROUP, STAFF_MEMBER, "Thanks, we found the bug.", message_thread_id=topic
        )
        await customer.handled(staff)
        await fake.wait_for(sent_to(customer.user_id, "Thanks, we found the bug."))

        note = fake.group_text(
            STAFF_GROUP, STAFF_MEMBER, "// ask the app team for a fix date", message_thread_id=topic
        )
        await customer.handled(note)
        await fake.wait_for(sent_to(STAFF_GROUP, "内部备注已保存"))
        stored = await service.container.repos.tickets.get(ticket.id)
        assert stored is not None
        notes = [e.detail for e in stored.events if e.kind == "note"]
        assert notes == ["ask the app team for a fix date"]
        assert not any("fix date" in t for t in customer.texts())

        await customer.handled(fake.user_photo(customer.user_id, "screenshot-1"))
        (photo,) = await fake.wait_for("sendPhoto")
        assert photo.chat_id == STAFF_GROUP
        assert photo.params["photo"] == "screenshot-1"
        assert photo.params["message_thread_id"] == topic

        # A reply from the web console shows up in the topic as well.
        await service.container.tickets.staff_reply(
            ticket.id, staff_id="agent-2", text="A fix ships on Monday."
        )
        await fake.wait_for(sent_to(customer.user_id, "A fix ships on Monday."))
        (mirror,) = await fake.wait_for(sent_to(STAFF_GROUP, "A fix ships on Monday."))
        assert mirror.params["text"].startswith("已发送给客户：")  # exactly what the customer got
        assert mirror.params["message_thread_id"] == topic


async def test_staff_topic_posts_keep_nobody_waiting_and_are_not_lost(
    settings: Settings, fake: FakeTelegram
) -> None:
    """Posts to the staff group went out inside the change that caused them: a customer's
    words were answered only after the group's post (its pace is 20 posts a minute; here
    the Bot API hangs), and a post that failed was lost. Now they are owed in the
    database, and posted after, in order, again until they go."""
    configured = telegram_settings(settings, fake, telegram_staff_chat_id=STAFF_GROUP)
    async with running(configured, fake) as service:
        customer = TelegramCustomer(fake, service, 5019)
        await customer.give_feedback("The app logs me out every day.")
        created, _ = await topic_and_card(fake)
        topic = created.result["message_thread_id"]

        release = fake.hold("sendMessage", chat_id=STAFF_GROUP)
        await customer.says("It happens on Android 14.")  # handled while the group hangs
        await fake.wait_for(sent_to(customer.user_id, "Added to your feedback"))
        release.set()
        await fake.wait_for(sent_to(STAFF_GROUP, "Android 14"))

        # Refused (a 502 twice), it is posted later; the ticket's next post waits for it.
        fake.fail_next("sendMessage", error_code=502, times=2, chat_id=STAFF_GROUP)
        await customer.says("And on Android 13.")
        await customer.says("Not on iOS.")
        (later,) = await fake.wait_for(sent_to(STAFF_GROUP, "Android 13"))
        assert later.params["message_thread_id"] == topic
        (last,) = await fake.wait_for(sent_to(STAFF_GROUP, "Not on iOS"))
        posted = [c for c in fake.calls if c.method == "sendMessage" and not c.failed]
        assert posted.index(later) < posted.index(last)  # in order, the retried one first

        async def nothing_owed() -> bool | None:
            tomorrow = datetime.now(UTC) + timedelta(days=1)
            owed = await service.container.repos.staff_posts.due(tomorrow, 10)
            return True if not owed else None

        await eventually(nothing_owed, "every staff post done")


async def test_a_note_whose_confirmation_fails_is_saved_once(
    settings: Settings, fake: FakeTelegram
) -> None:
    configured = telegram_settings(settings, fake, telegram_staff_chat_id=STAFF_GROUP)
    async with running(configured, fake) as service:
        customer = TelegramCustomer(fake, service, 5017)
        ticket = await customer.give_feedback("The app logs me out every day.")
        created, _ = await topic_and_card(fake)
        topic = created.result["message_thread_id"]
        # "Note saved" fails past the sender's own tries (a 502 from the Bot API).
        fake.fail_next("sendMessage", error_code=502, times=3, chat_id=STAFF_GROUP)
        note = fake.group_text(
            STAFF_GROUP, STAFF_MEMBER, "// ask the app team for a fix date", message_thread_id=topic
        )
        await customer.handled(note)
        stored = await service.container.repos.tickets.get(ticket.id)
        assert stored is not None
        notes = [e.detail for e in stored.events if e.kind == "note"]
        assert notes == ["ask the app team for a fix date"]


async def test_a_long_reply_sent_in_parts_sends_only_the_rest_after_a_429(
    settings: Settings, fake: FakeTelegram
) -> None:
    async with running(telegram_settings(settings, fake), fake) as service:
        customer = TelegramCustomer(fake, service, 5018)
        ticket = await customer.give_feedback("The app logs me out every day.")
        words = ("We looked into it. " * 300)[:4090]  # with its heading: two parts
        throttled: list[Call] = []

        def second_part_throttled(call: Call) -> None:
            if throttled or call.method != "sendMessage" or call.chat_id != customer.user_id:
                return
            if call.params["text"].startswith("Reply from our team"):
                throttled.append(call)  # the first part went: Telegram says 429 to the next
                fake.fail_next(
                    "sendMessage", error_code=429, retry_after=1, chat_id=customer.user_id
                )

        fake.answered.append(second_part_throttled)
        await service.container.tickets.staff_reply(ticket.id, staff_id="agent", text=words)

        async def rest_arrived() -> bool | None:
            texts = customer.texts()
            return True if texts and texts[-1].endswith(words[-20:]) else None

        await eventually(rest_arrived, "the reply's second part", timeout=30)
        heads = [t for t in customer.texts() if t.startswith("Reply from our team")]
        assert len(heads) == 1  # the first part once


def webhook_settings(settings: Settings, fake: FakeTelegram, **overrides: Any) -> Settings:
    """Webhook mode at a public URL, with the secret Telegram sends back in a header."""
    return telegram_settings(
        settings,
        fake,
        telegram_webhook_url="https://feedback.example.com/",
        telegram_webhook_secret="a-long-random-secret",
        **overrides,
    )


async def test_webhook_mode_checks_the_secret_token(settings: Settings, fake: FakeTelegram) -> None:
    configured = webhook_settings(settings, fake)
    async with running(configured, fake) as service:
        (hook,) = fake.calls_of("setWebhook")
        assert hook.params["url"] == "https://feedback.example.com/telegram/webhook"
        assert hook.params["secret_token"] == "a-long-random-secret"
        assert fake.calls_of("getUpdates") == []

        update = fake.user_command(5012, "start", push=False)
        url = service.url + "/telegram/webhook"
        async with aiohttp.ClientSession() as http:
            wrong = {"X-Telegram-Bot-Api-Secret-Token": "guess"}
            async with http.post(url, json=update, headers=wrong) as response:
                assert response.status == 401
            assert fake.sent_texts(5012) == []

            right = {"X-Telegram-Bot-Api-Secret-Token": "a-long-random-secret"}
            for _ in range(2):  # the second is a duplicate delivery
                async with http.post(url, json=update, headers=right) as response:
                    assert response.status == 200
        texts = fake.sent_texts(5012)
        assert len(texts) == 1
        assert "privacy notice" in texts[0]


async def test_an_update_still_handled_at_the_webhook_deadline_is_answered_503_not_200(
    settings: Settings, fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiogram answers a webhook 200 after 55 s and goes on handling in the background;
    an update that then failed was lost. Past the deadline it is answered 503, so that
    Telegram delivers it again, and it is answered once."""
    monkeypatch.setattr(WebhookHandler, "DEADLINE", 1.0)
    configured = webhook_settings(settings, fake)
    async with running(configured, fake) as service, aiohttp.ClientSession() as http:
        url = service.url + "/telegram/webhook"
        headers = {"X-Telegram-Bot-Api-Secret-Token": "a-long-random-secret"}
        release = fake.hold("sendMessage", chat_id=5014)  # the Bot API hangs for this chat
        update = fake.user_command(5014, "start", push=False)
        timeout = aiohttp.ClientTimeout(total=20)
        async with http.post(url, json=update, headers=headers, timeout=timeout) as response:
            assert response.status == 503
        release.set()
        await fake.wait_for(sent_to(5014, "privacy notice"))
        # Telegram's redelivery: known as handled, answered 200, not answered again.
        async with http.post(url, json=update, headers=headers, timeout=timeout) as response:
            assert response.status == 200
        assert len(fake.sent_texts(5014)) == 1


async def test_a_stuck_webhook_update_and_its_redeliveries_hold_one_slot(
    settings: Settings, fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(WebhookHandler, "DEADLINE", 1.0)
    configured = webhook_settings(settings, fake, inputs_in_flight=2)
    async with running(configured, fake) as service, aiohttp.ClientSession() as http:
        url = service.url + "/telegram/webhook"
        headers = {"X-Telegram-Bot-Api-Secret-Token": "a-long-random-secret"}
        release = fake.hold("sendMessage", chat_id=5019)  # the Bot API hangs for this chat
        stuck = fake.user_command(5019, "start", push=False)
        for _ in range(3):  # the delivery, then Telegram's redeliveries of it
            async with http.post(url, json=stuck, headers=headers) as response:
                assert response.status == 503
        other = fake.user_command(5020, "start", push=False)
        async with http.post(url, json=other, headers=headers) as response:
            assert response.status == 200  # another customer is not turned away
        release.set()
        async with http.post(url, json=stuck, headers=headers) as response:
            assert response.status == 200  # waited for the handling, which went through
        assert len(fake.sent_texts(5019)) == 1


async def test_a_failed_webhook_update_leaves_no_unretrieved_future() -> None:
    """A handling that fails is answered 500, its error retrieved: asyncio reports no
    exception that was never retrieved."""

    class Boom(BaseMiddleware):
        async def __call__(self, handler: Any, event: Any, data: Any) -> Any:
            raise RuntimeError("the handling failed")

    dispatcher = Dispatcher()
    dispatcher.update.outer_middleware(Boom())
    bot = Bot("123456:" + "A" * 35)
    webhook = WebhookHandler(
        dispatcher, bot, handle_in_background=False, admission=Admission(5, Metrics())
    )
    sender = {"id": 5, "is_bot": False, "first_name": "A"}
    chat = {"id": 5, "type": "private"}
    message = {"message_id": 1, "date": 0, "chat": chat, "from": sender, "text": "hi"}
    update = {"update_id": 1, "message": message}

    class Request:
        async def json(self, loads: Any) -> Any:
            return update

    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        for _ in range(2):
            with pytest.raises(RuntimeError):
                await webhook._handle_request(bot, Request())  # type: ignore[arg-type]
        await asyncio.sleep(0)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
        await bot.session.close()
    assert [c["message"] for c in reported] == []


async def test_a_webhook_body_that_is_not_an_update_gets_400_not_500(
    settings: Settings, fake: FakeTelegram
) -> None:
    # Found by bench/faults/fuzz.py: aiogram turned the parse error into a 500.
    configured = webhook_settings(settings, fake)
    async with running(configured, fake) as service, aiohttp.ClientSession() as http:
        url = service.url + "/telegram/webhook"
        headers = {
            "X-Telegram-Bot-Api-Secret-Token": "a-long-random-secret",
            "Content-Type": "application/json",
        }
        for body in (b"null", b"[]", b"{}", b"not json", b'{"update_id": "x"}', b"\xff\xfe"):
            async with http.post(url, data=body, headers=headers) as response:
                assert response.status == 400, body
        update = fake.user_command(5014, "start", push=False)
        async with http.post(url, json=update, headers=headers) as response:
            assert response.status == 200


async def test_a_webhook_update_past_the_bound_in_flight_gets_503_and_its_redelivery_counts(
    settings: Settings, fake: FakeTelegram
) -> None:
    configured = webhook_settings(settings, fake, inputs_in_flight=1)
    async with running(configured, fake) as service, aiohttp.ClientSession() as http:
        url = service.url + "/telegram/webhook"
        headers = {"X-Telegram-Bot-Api-Secret-Token": "a-long-random-secret"}
        update = fake.user_command(5015, "start", push=False)
        assert service.container.telegram is not None
        admission = service.container.telegram.admission  # Telegram's own bound
        assert admission is not None
        assert admission is not service.container.widget.admission
        with admission.slot("telegram") as taken:  # another update is being worked on
            assert taken
            async with http.post(url, json=update, headers=headers) as response:
                assert response.status == 503  # Telegram delivers it again later
        assert fake.sent_texts(5015) == []
        assert service.container.metrics.inputs_refused.labels("telegram")._value.get() == 1
        async with http.post(url, json=update, headers=headers) as response:
            assert response.status == 200
        texts = fake.sent_texts(5015)
        assert len(texts) == 1
        assert "privacy notice" in texts[0]


async def test_a_failed_handler_is_retried_so_polling_loses_nothing(
    fake: FakeTelegram, service: Service
) -> None:
    customer = TelegramCustomer(fake, service, 5013)
    fake.fail_next("sendMessage", error_code=502, times=2, chat_id=customer.user_id)
    await customer.command("start")
    assert await customer.step() == "notice"
    assert len(customer.texts()) == 1  # the prompt, once, after two failures


async def test_c3_1_7_a_double_tap_on_i_agree_does_not_answer_the_next_question(
    fake: FakeTelegram, service: Service
) -> None:
    customer = TelegramCustomer(fake, service, 5014)
    await customer.command("start")
    notice = customer.last_prompt()
    await customer.press("yes")
    assert await customer.step() == "expanded_use"
    # The same button again (a double tap; its keyboard was already removed).
    again = fake.user_callback(
        customer.user_id, "o:notice:yes", message_id=notice.result["message_id"]
    )
    await customer.handled(again)
    assert await customer.step() == "expanded_use"
    repos = service.container.repos
    who = await repos.customers.find(Channel.TELEGRAM, str(customer.user_id))
    assert who is not None
    ledger = await repos.consents.current(who.id)
    assert ConsentPurpose.EXPANDED_USE not in ledger
    assert ledger[ConsentPurpose.PROCESSING].granted


async def test_an_answer_to_a_stale_query_is_still_handled(
    fake: FakeTelegram, service: Service
) -> None:
    customer = TelegramCustomer(fake, service, 5015)
    await customer.command("start")
    fake.fail_next(
        "answerCallbackQuery",
        error_code=400,
        description="Bad Request: query is too old and response timeout expired",
    )
    await customer.press("yes")
    assert await customer.step() == "expanded_use"


async def test_a_caption_sent_with_a_photo_is_kept(fake: FakeTelegram, service: Service) -> None:
    customer = TelegramCustomer(fake, service, 5016)
    ticket = await customer.give_feedback("The zip broke.")
    await customer.handled(
        fake.user_photo(customer.user_id, "zip-photo", caption="Here is the broken zip")
    )
    inbound = await service.container.repos.messages.for_ticket(ticket.id)
    (message,) = [m for m in inbound if m.direction is Direction.INBOUND]
    assert message.text == "Here is the broken zip"
    assert [a.file_ref for a in message.attachments] == ["zip-photo"]


async def test_a_customer_who_blocked_the_bot_does_not_break_handling(
    fake: FakeTelegram, service: Service
) -> None:
    customer = TelegramCustomer(fake, service, 5017)
    fake.fail_next(
        "sendMessage",
        error_code=403,
        description="Forbidden: bot was blocked by the user",
        chat_id=customer.user_id,
    )
    await customer.command("start")  # handled and recorded, not retried forever
    assert await customer.step() == "notice"


async def test_messages_in_other_groups_are_ignored(fake: FakeTelegram, service: Service) -> None:
    update = fake.group_text(-100999, 5018, "hello bot", message_thread_id=7)
    customer = TelegramCustomer(fake, service, 5018)
    await customer.handled(update)
    assert fake.sent_texts(-100999) == []


async def test_updates_of_several_users_at_once_are_answered_in_each_users_order(
    settings: Settings, fake: FakeTelegram
) -> None:
    # A burst, fetched by one long poll: different users' updates are handled at the same
    # time, but each user's in the order they were sent.
    configured = telegram_settings(settings, fake, telegram_polling_concurrency=16)
    async with running(configured, fake):
        users = (5101, 5102, 5103)
        commands = ("help", "status", "help", "status", "help", "status")
        for command in commands:
            for user in users:
                fake.user_command(user, command)
        for user in users:
            await fake.wait_for(sent_to(user, ""), count=len(commands), timeout=30)
        for user in users:
            kinds = [
                "status" if "not sent us any feedback" in text else "help"
                for text in fake.sent_texts(user)
            ]
            assert kinds == list(commands), user


def test_the_models_of_bot_api_answers_are_built_once_and_kept() -> None:
    # aiogram parametrizes Response[T] in a function at every call; pydantic keeps that
    # class only weakly, so without response_models() a collection dropped it and the next
    # call built it again (3-5 ms of CPU each time).
    kept = response_models()

    def answer_model(method: type[TelegramMethod[Any]]) -> type[Any]:
        generic: Any = Response
        return generic[method.__returning__]  # type: ignore[no-any-return]

    for method in (SendMessage, AnswerCallbackQuery, GetUpdates):
        first = answer_model(method)
        gc.collect()
        assert answer_model(method) is first
        assert first in kept


def test_no_filter_or_handler_is_sent_to_a_worker_thread() -> None:
    # aiogram runs a plain (not async) filter or handler through asyncio.to_thread; a magic
    # filter such as F.text is one. Each update passed four to six of them, each a thread
    # hop for a few attribute reads.
    threaded = []
    for router in get_routers(staff_chat_id=-100123):
        for name, observer in router.observers.items():
            if not isinstance(observer, TelegramEventObserver):
                continue
            # The router's own .filter(...), each handler, and each handler's filters.
            checks: list[CallableObject] = [*(observer._handler.filters or [])]
            for handler in observer.handlers:
                checks.append(handler)
                checks.extend(handler.filters or [])
            threaded += [f"{router.name}.{name}: {c.callback!r}" for c in checks if not c.awaitable]
    assert threaded == []
