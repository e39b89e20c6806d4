"""Issue 7's acceptance test, end to end through the real channels (C3.2.6, C3.2.5,
C3.2.4): two customers on two channels, with tickets, messages, attachments and
consents; one exports and then deletes their data from the Telegram chat."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from bot.config import Settings
from bot.domain.models import Channel
from bot.domain.privacy import EXPORT_FORMAT, conversation_key
from tests.channels.telegram import TelegramCustomer, running, telegram_settings
from tests.channels.test_widget import png, upload
from tests.channels.widget import WidgetVisitor
from tests.fake_telegram import FakeTelegram
from tests.support import eventually, everything_stored

STAFF_GROUP = -1001234567
# Distinctive values, so a scan of the database cannot find them by accident.
TG_USER = 731555913
TG_TEXT = "Telegram customer: the kettle whistles at midnight."
TG_PHOTO = "AgACAgQAAxkBAAI-kettle-photo-731"
TG_EMAIL = "kettle.owner.731@example.com"
TG_FOLLOW_UP = "Also the handle wobbles, model K-731."
WIDGET_TEXT = "Widget visitor: the checkout froze on the coupon page."
WIDGET_PHONE = "+8613912345678"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


async def test_c3_2_6_two_customers_export_one_and_erase_one(
    settings: Settings, fake: FakeTelegram
) -> None:
    configured = telegram_settings(settings, fake, telegram_staff_chat_id=STAFF_GROUP)
    async with running(configured, fake) as service:
        container = service.container
        # --- Telegram customer: consents, a ticket with a photo and an e-mail, a reply,
        # a follow-up message.
        tg = TelegramCustomer(fake, service, TG_USER)
        await tg.command("start")
        for value in ("yes", "yes", "yes", "product_quality", "2"):
            await tg.press(value)
        await tg.says(TG_TEXT)
        await tg.handled(fake.user_photo(TG_USER, TG_PHOTO))
        await tg.press("done")
        await tg.says(TG_EMAIL)
        await tg.press("submit")
        ticket = await tg.ticket()
        (topic_call,) = await fake.wait_for("createForumTopic")
        topic_id = topic_call.result["message_thread_id"]
        await container.tickets.staff_reply(ticket.id, staff_id="s1", text="We are on it, K.")
        await tg.says(TG_FOLLOW_UP)

        # --- Widget visitor: a ticket with an uploaded photo and a phone number.
        visitor = WidgetVisitor(service.url)
        await visitor.connect()
        try:
            await visitor.to_attachments()
            grant = await visitor.call("upload", {})
            _, body = await upload(service, grant["token"], png(), name="coupon-731.png")
            await visitor.send("file", body["upload_id"])
            await visitor.send("choice", "done")
            await visitor.send("text", WIDGET_PHONE)
            await visitor.send("choice", "submit")
            await visitor.send("text", WIDGET_TEXT)
        finally:
            await visitor.disconnect()
        await container.delivery.drain()

        # --- A correction, from the Telegram chat: staff see it in the topic too.
        await tg.command("privacy")
        await tg.press("correct")
        await tg.says("Correction K-731: it whistles at noon, not midnight.")
        await fake.wait_for(
            lambda c: (
                c.method == "sendMessage"
                and c.params.get("message_thread_id") == topic_id
                and "Correction K-731" in c.params.get("text", "")
            )
        )

        # --- Export, from the Telegram chat: a JSON document in the chat.
        await tg.command("privacy")
        await tg.press("export")
        (sent,) = await fake.wait_for(lambda c: c.method == "sendDocument" and c.chat_id == TG_USER)
        exported_raw = sent.uploads["document"].content.decode("utf-8")
        exported = json.loads(exported_raw)
        assert exported["format"] == EXPORT_FORMAT
        assert exported["customer"]["channel_user_id"] == str(TG_USER)
        assert exported["customer"]["email"] == TG_EMAIL
        (exported_ticket,) = exported["tickets"]
        assert exported_ticket["reference"] == ticket.reference
        assert exported_ticket["text"] == TG_TEXT
        assert [a["reference"] for a in exported_ticket["attachments"]] == [TG_PHOTO]
        texts = [m["text"] for m in exported["messages"]]
        assert any("We are on it, K." in t for t in texts)
        assert TG_FOLLOW_UP in texts
        assert {c["purpose"] for c in exported["consents"]} == {
            "processing",
            "expanded_use",
            "licence",
        }
        for other in (WIDGET_TEXT, WIDGET_PHONE, "coupon-731", visitor.visitor):
            assert other not in exported_raw

        # --- Erase, from the Telegram chat, with the confirmation.
        customer = await container.repos.customers.find(Channel.TELEGRAM, str(TG_USER))
        assert customer is not None
        await tg.command("privacy")
        await tg.press("privacy_erase")
        assert "cannot be undone" in tg.last_prompt().params["text"]
        await tg.press("erase_yes")

        async def told() -> bool | None:
            return True if any("Your data has been deleted" in t for t in tg.texts()) else None

        await eventually(told, "the customer to be told")
        (deleted,) = await fake.wait_for("deleteForumTopic")
        assert (deleted.chat_id, deleted.params["message_thread_id"]) == (STAFF_GROUP, topic_id)

        everything = await everything_stored(container)
        traces = {
            "telegram user id": str(TG_USER),
            "customer id": customer.id,
            "conversation key": conversation_key(Channel.TELEGRAM.value, str(TG_USER)),
            "e-mail": TG_EMAIL,
            "feedback text": TG_TEXT,
            "follow-up": TG_FOLLOW_UP,
            "photo file id": TG_PHOTO,
            "staff reply": "We are on it, K.",
            "correction": "Correction K-731",
        }
        found = {name: value for name, value in traces.items() if value in everything}
        assert found == {}, found
        # The widget visitor keeps everything.
        for kept in (WIDGET_TEXT, WIDGET_PHONE, "coupon-731.png"):
            assert kept in everything, kept
        # The anonymous figures still count the ticket.
        anonymous = await container.repos.tickets.by_reference(ticket.reference)
        assert anonymous is not None
        assert (anonymous.category.value, anonymous.rating) == ("product_quality", 2)
        assert anonymous.customer_id == ""
        # ... and so do the anonymized analytics (C3.2.4): the ticket still counts.
        day = container.tickets.calendar.local_date(anonymous.created_at)
        report = await container.analytics.report(day, day)
        counts = {series.key: sum(series.counts) for series in report.by_category}
        assert counts["product_quality"] == 2  # both customers', the erased one included
        assert report.ratings[2] == 2
