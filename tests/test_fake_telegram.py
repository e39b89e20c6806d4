"""The fake Telegram Bot API answers a real aiogram Bot the way Telegram would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
)
from aiogram.methods import TelegramMethod
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from tests.fake_telegram import Call, FakeTelegram

USER = 1001
STAFF_GROUP = -1002000000001


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(bot_id=777, bot_username="feedback_test_bot") as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))
    bot = Bot(fake.token, session=session)
    yield bot
    await bot.session.close()


async def test_get_me_returns_the_configured_bot(fake: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()

    assert (me.id, me.username, me.is_bot) == (777, "feedback_test_bot", True)
    assert [c.method for c in fake.calls] == ["getMe"]
    assert fake.calls[0].params == {}


async def test_send_message_records_decoded_params_and_returns_a_message(
    fake: FakeTelegram, bot: Bot
) -> None:
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Rate 5", callback_data="rate:5")]]
    )

    first = await bot.send_message(USER, "How did we do?", reply_markup=keyboard)
    second = await bot.send_message(USER, "42")  # a numeric text stays a string

    assert (first.message_id, second.message_id) == (1, 2)
    assert first.chat.id == USER
    assert first.chat.type == "private"
    assert first.from_user is not None
    assert first.from_user.id == 777
    assert isinstance(first.reply_markup, InlineKeyboardMarkup)
    assert first.reply_markup.inline_keyboard[0][0].callback_data == "rate:5"
    assert isinstance(first.date.timestamp(), float)
    call = fake.calls_of("sendMessage")[0]
    assert call.params["chat_id"] == USER
    assert call.params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Rate 5", "callback_data": "rate:5"}]]
    }
    assert fake.sent_texts(USER) == ["How did we do?", "42"]
    assert fake.sent_texts(USER + 1) == []


async def test_edit_and_callback_refer_to_the_sent_message(fake: FakeTelegram, bot: Bot) -> None:
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Yes", callback_data="yes")]]
    )
    sent = await bot.send_message(USER, "Solved?", reply_markup=keyboard)

    fake.user_callback(USER, "yes", message_id=sent.message_id)
    [update] = await bot.get_updates()
    edited = await bot.edit_message_text("Thanks!", chat_id=USER, message_id=sent.message_id)

    assert update.callback_query is not None
    assert update.callback_query.data == "yes"
    assert update.callback_query.message is not None
    assert update.callback_query.message.message_id == sent.message_id
    assert not isinstance(edited, bool)
    assert edited.text == "Thanks!"
    assert edited.reply_markup is None  # an edit without a keyboard removes it
    assert fake.sent_texts(USER) == ["Solved?", "Thanks!"]


async def test_get_updates_delivers_injected_updates_until_confirmed(
    fake: FakeTelegram, bot: Bot
) -> None:
    first_id = fake.user_text(USER, "hello", language_code="zh-hans")["update_id"]
    fake.user_command(USER, "start", "ref42")

    updates = await bot.get_updates(timeout=0)

    assert [u.update_id for u in updates] == [first_id, first_id + 1]
    message = updates[0].message
    assert message is not None
    assert message.text == "hello"
    assert message.from_user is not None
    assert message.from_user.language_code == "zh-hans"
    command = updates[1].message
    assert command is not None
    assert command.text == "/start ref42"
    assert command.entities is not None
    assert command.entities[0].type == "bot_command"
    assert command.entities[0].length == len("/start")
    # Unconfirmed updates are delivered again; an offset confirms them.
    assert len(await bot.get_updates(timeout=0)) == 2
    assert await bot.get_updates(offset=first_id + 2, timeout=0) == []
    assert fake.pending_updates == []


async def test_long_poll_returns_an_update_pushed_while_waiting(
    fake: FakeTelegram, bot: Bot
) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await fake.wait_for("getUpdates")

    fake.user_text(USER, "late")
    updates = await poll

    assert [u.message.text for u in updates if u.message] == ["late"]


async def test_long_poll_wait_is_capped(fake: FakeTelegram, bot: Bot) -> None:
    fake.long_poll_cap = 0.05

    assert await bot.get_updates(timeout=30) == []


async def test_repush_redelivers_an_already_confirmed_update(fake: FakeTelegram, bot: Bot) -> None:
    update_id = fake.user_text(USER, "once")["update_id"]
    await bot.get_updates(timeout=0)
    assert await bot.get_updates(offset=update_id + 1, timeout=0) == []

    assert fake.repush(update_id) == update_id
    [again] = await bot.get_updates(offset=update_id + 1, timeout=0)

    assert again.update_id == update_id
    assert again.message is not None
    assert again.message.text == "once"
    assert await bot.get_updates(offset=update_id + 1, timeout=0) == []


async def test_updates_built_without_push_are_not_queued(fake: FakeTelegram) -> None:
    update = fake.user_photo(USER, "photo-1", caption="receipt", push=False)

    assert fake.pending_updates == []
    assert update["message"]["photo"][0]["file_id"] == "photo-1"
    assert fake.update(update["update_id"]) == update


async def test_group_text_is_a_topic_message_in_a_forum(fake: FakeTelegram, bot: Bot) -> None:
    topic = await bot.create_forum_topic(STAFF_GROUP, "Ticket 17")
    reply = await bot.send_message(
        STAFF_GROUP, "New ticket", message_thread_id=topic.message_thread_id
    )

    fake.group_text(STAFF_GROUP, 55, "on it", message_thread_id=topic.message_thread_id)
    fake.group_text(
        STAFF_GROUP,
        55,
        "replying",
        message_thread_id=topic.message_thread_id,
        reply_to_message_id=reply.message_id,
    )
    plain, replying = await bot.get_updates(timeout=0)

    assert topic.name == "Ticket 17"
    assert reply.message_thread_id == topic.message_thread_id
    for update in (plain, replying):
        assert update.message is not None
        assert update.message.chat.type == "supergroup"
        assert update.message.chat.is_forum is True
        assert update.message.is_topic_message is True
        assert update.message.message_thread_id == topic.message_thread_id
    assert plain.message is not None
    assert plain.message.reply_to_message is not None
    assert plain.message.reply_to_message.forum_topic_created is not None
    assert replying.message is not None
    assert replying.message.reply_to_message is not None
    assert replying.message.reply_to_message.text == "New ticket"


async def test_retry_after_from_fail_next(fake: FakeTelegram, bot: Bot) -> None:
    fake.fail_next("sendMessage", error_code=429, retry_after=7)

    with pytest.raises(TelegramRetryAfter) as raised:
        await bot.send_message(USER, "too fast")
    await bot.send_message(USER, "later")

    assert raised.value.retry_after == 7
    assert [(c.failed, c.error_code) for c in fake.calls_of("sendMessage")] == [
        (True, 429),
        (False, None),
    ]
    assert fake.sent_texts() == ["later"]


async def test_blocked_user_and_chat_specific_faults(fake: FakeTelegram, bot: Bot) -> None:
    fake.fail_next(
        "sendMessage",
        error_code=403,
        description="Forbidden: bot was blocked by the user",
        chat_id=USER,
        times=2,
    )

    await bot.send_message(USER + 1, "other chat is fine")
    for _ in range(2):
        with pytest.raises(TelegramForbiddenError, match="blocked by the user"):
            await bot.send_message(USER, "hi")
    await bot.send_message(USER, "unblocked")

    assert fake.sent_texts() == ["other chat is fine", "unblocked"]


async def test_errors_for_unknown_method_and_bad_input(fake: FakeTelegram, bot: Bot) -> None:
    class Frobnicate(TelegramMethod[bool]):
        __returning__ = bool
        __api_method__ = "frobnicate"

    with pytest.raises(TelegramNotFound, match="method not found"):
        await bot(Frobnicate())
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("missing")

    assert [(c.method, c.failed) for c in fake.calls] == [
        ("frobnicate", True),
        ("getFile", True),
    ]


async def test_download_of_a_known_file(fake: FakeTelegram, bot: Bot) -> None:
    fake.add_file("doc-1", b"%PDF-1.7 invoice", "documents/invoice.pdf")

    downloaded = await bot.download("doc-1")

    assert downloaded is not None
    assert downloaded.read() == b"%PDF-1.7 invoice"
    assert fake.downloads == ["documents/invoice.pdf"]


async def test_uploaded_photo_is_stored_and_downloadable(fake: FakeTelegram, bot: Bot) -> None:
    photo = BufferedInputFile(b"\x89PNG fake", filename="shot.png")

    sent = await bot.send_photo(USER, photo, caption="Your screenshot")

    assert sent.photo is not None
    file_id = sent.photo[-1].file_id
    assert fake.files[file_id] == b"\x89PNG fake"
    call = fake.calls_of("sendPhoto")[0]
    assert call.uploads["photo"].filename == "shot.png"
    assert call.params["chat_id"] == USER
    assert fake.sent_texts(USER) == ["Your screenshot"]
    downloaded = await bot.download(file_id)
    assert downloaded is not None
    assert downloaded.read() == b"\x89PNG fake"


async def test_commands_are_kept_per_language_and_scope(fake: FakeTelegram, bot: Bot) -> None:
    await bot.set_my_commands([BotCommand(command="start", description="Start")])
    await bot.set_my_commands(
        [BotCommand(command="start", description="开始")],
        scope=BotCommandScopeAllPrivateChats(),
        language_code="zh",
    )

    assert fake.my_commands == {"": [{"command": "start", "description": "Start"}]}
    assert fake.commands("zh", {"type": "all_private_chats"}) == [
        {"command": "start", "description": "开始"}
    ]


async def test_webhook_round_trip(fake: FakeTelegram, bot: Bot) -> None:
    await bot.set_webhook("https://example.test/hook", secret_token="s3cret")
    fake.user_text(USER, "queued")

    info = await bot.get_webhook_info()
    assert (info.url, info.pending_update_count) == ("https://example.test/hook", 1)
    assert fake.webhook is not None
    assert fake.webhook["secret_token"] == "s3cret"

    await bot.delete_webhook(drop_pending_updates=True)
    assert (await bot.get_webhook_info()).url == ""
    assert fake.pending_updates == []


async def test_wait_for_sees_calls_made_concurrently(fake: FakeTelegram, bot: Bot) -> None:
    async def reply_twice() -> None:
        await bot.send_chat_action(USER, "typing")
        await bot.send_message(USER, "one")
        await bot.send_message(USER, "two")

    task = asyncio.create_task(reply_twice())
    calls = await fake.wait_for("sendMessage", count=2)
    await task

    assert [c.params["text"] for c in calls] == ["one", "two"]

    def is_typing(call: Call) -> bool:
        return call.method == "sendChatAction" and call.params.get("action") == "typing"

    assert len(await fake.wait_for(is_typing)) == 1


async def test_wait_for_times_out_with_recent_calls(fake: FakeTelegram, bot: Bot) -> None:
    await bot.send_message(USER, "only this")

    with pytest.raises(TimeoutError, match=r"(?s)'deleteMessage'.*sendMessage.*only this"):
        await fake.wait_for("deleteMessage", timeout=0.05)


async def test_dispatcher_polling_answers_and_sees_a_redelivery_once_more(
    fake: FakeTelegram, bot: Bot
) -> None:
    dispatcher = Dispatcher()
    seen: list[int] = []

    @dispatcher.message()
    async def echo(message: Message) -> None:
        seen.append(message.message_id)
        await message.answer(f"echo: {message.text}")

    polling = asyncio.create_task(
        dispatcher.start_polling(bot, handle_signals=False, close_bot_session=False)
    )
    update_id = fake.user_text(USER, "hi")["update_id"]
    await fake.wait_for("sendMessage")
    fake.repush(update_id)  # Telegram re-delivers, e.g. after a crash before confirming
    await fake.wait_for("sendMessage", count=2)
    await dispatcher.stop_polling()
    await polling

    assert fake.sent_texts(USER) == ["echo: hi", "echo: hi"]
    assert len(seen) == 2
    assert len(set(seen)) == 1  # the same message twice: deduplication is the bot's job
    assert fake.pending_updates == []
