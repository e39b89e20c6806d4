"""The widget channel end to end: the real service, a real socket.io client, the real database."""

from __future__ import annotations

import asyncio
import struct
import time
import zlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import socketio

import bot.channels.widget as widget_channel
from bot.app import Container
from bot.config import Settings
from bot.domain.models import Channel, Direction, TicketStatus
from bot.domain.privacy import conversation_key
from tests.channels.service import Service, serving
from tests.channels.widget import WidgetVisitor, customer_of, sign
from tests.support import StaffViews, configured

SECRET = "host-app-secret-for-tests"


def widget_settings(settings: Settings, **overrides: Any) -> Settings:
    return configured(settings, widget_identity_secret=SECRET, **overrides)


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Service]:
    async with serving(widget_settings(settings)) as started:
        yield started


@pytest.fixture
async def visitor(service: Service) -> AsyncIterator[WidgetVisitor]:
    tab = WidgetVisitor(service.url)
    await tab.connect()
    yield tab
    await tab.disconnect()


def png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height)))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


async def upload(
    service: Service, token: str, content: bytes, *, name: str = "shot.png", mime: str = "image/png"
) -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData()
    form.add_field("file", content, filename=name, content_type=mime)
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(service.url + "/widget/upload", data=form, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_c3_1_3_a_visitor_gives_feedback_and_gets_the_acknowledgement(
    service: Service, visitor: WidgetVisitor
) -> None:
    assert visitor.states[-1] == {"locale": "en", "prompt": None}  # no flow yet: "start"
    ack = await visitor.send("command", "start")
    assert ack["ok"]
    assert ack["seq"] is None  # an answer inside the flow is stored as the flow's state
    notice = ack["replies"][-1]
    assert notice["step"] == "notice"
    assert "privacy notice" in notice["text"]
    assert [o["value"] for o in notice["options"]] == ["yes", "no"]

    acknowledgement = await visitor.give_feedback()
    repos = service.container.repos
    customer = await customer_of(repos, visitor)
    ticket = await repos.tickets.latest_open(customer.id)
    assert ticket is not None
    assert ticket.channel is Channel.WIDGET
    assert ticket.category.value == "user_interface"
    assert ticket.reference in acknowledgement["text"]
    assert acknowledgement["author"] == "bot"
    assert acknowledgement["kind"] == "ack"


async def test_a_message_resent_with_the_same_client_id_is_stored_once(
    service: Service, visitor: WidgetVisitor
) -> None:
    await visitor.give_feedback()
    first = await visitor.send("text", "Also: the coupon field is hidden.", client_id="msg-0001")
    again = await visitor.send("text", "Also: the coupon field is hidden.", client_id="msg-0001")
    assert first["ok"]
    assert isinstance(first["seq"], int)
    assert again["seq"] == first["seq"]
    assert again["duplicate"] is True
    customer = await service.container.repos.customers.find(
        Channel.WIDGET, f"visitor:{visitor.visitor}"
    )
    assert customer is not None
    stored = await service.container.repos.messages.after_seq(customer.id, 0)
    inbound = [m.text for m in stored if m.direction is Direction.INBOUND]
    assert inbound == ["Also: the coupon field is hidden."]


async def test_words_resent_after_their_ticket_closed_do_not_start_a_new_feedback(
    service: Service, visitor: WidgetVisitor
) -> None:
    await visitor.give_feedback()
    first = await visitor.send("text", "It froze again.", client_id="msg-0002")
    repos = service.container.repos
    customer = await customer_of(repos, visitor)
    await repos.tickets.collection.update_many(
        {"customer_id": customer.id}, {"$set": {"status": "closed"}}
    )
    # The ack was lost; the widget sends the same words again after staff closed the ticket.
    again = await visitor.send("text", "It froze again.", client_id="msg-0002")
    assert again["duplicate"] is True
    assert again["seq"] == first["seq"]
    assert again["prompt"] is None  # not the privacy notice of a new feedback
    conversation = await repos.conversations.get(
        conversation_key(Channel.WIDGET.value, customer.external_id)
    )
    assert conversation is not None
    assert conversation.step is None


async def test_an_answer_resent_with_the_same_client_id_moves_the_flow_once(
    visitor: WidgetVisitor,
) -> None:
    await visitor.send("command", "start")
    first = await visitor.send("choice", "yes", client_id="answer-01")
    assert first["replies"][-1]["step"] == "expanded_use"
    again = await visitor.send("choice", "yes", client_id="answer-01")
    # Not applied to the next question (a consent the visitor never saw): shown again.
    assert [r["step"] for r in again["replies"]] == ["expanded_use"]


async def test_c3_2_2_replies_sent_while_away_are_replayed_in_order_on_return(
    service: Service, visitor: WidgetVisitor
) -> None:
    acknowledgement = await visitor.give_feedback()
    seen = acknowledgement["seq"]
    await visitor.disconnect()

    customer = await service.container.repos.customers.find(
        Channel.WIDGET, f"visitor:{visitor.visitor}"
    )
    assert customer is not None
    ticket = await service.container.repos.tickets.latest_open(customer.id)
    assert ticket is not None
    tickets = service.container.tickets
    await tickets.staff_reply(ticket.id, staff_id="agent-1", text="First answer.")
    await tickets.staff_reply(ticket.id, staff_id="agent-1", text="Second answer.")

    back = WidgetVisitor(service.url, visitor=visitor.visitor)
    await back.connect(back.auth(last_seq=seen))
    await back.until(lambda: len(back.history) >= 2, "the two replies in the history")
    texts = [m["text"] for m in back.history]
    assert "First answer." in texts[0]
    assert "Second answer." in texts[1]
    assert [m["seq"] for m in back.history] == sorted(m["seq"] for m in back.history)
    assert all(m["seq"] > seen for m in back.history)
    await back.disconnect()


async def test_c3_2_2_a_widget_that_missed_a_push_asks_for_what_came_after(
    service: Service, visitor: WidgetVisitor
) -> None:
    """`missed`: a widget that saw a message number skipped gets the messages after the
    last one it has without a gap, and `through`, how far the answer is complete (a
    number below it that is not in the answer was never stored)."""
    acknowledgement = await visitor.give_feedback()
    customer = await customer_of(service.container.repos, visitor)
    ticket = await service.container.repos.tickets.latest_open(customer.id)
    assert ticket is not None
    tickets = service.container.tickets
    await tickets.staff_reply(ticket.id, staff_id="agent-1", text="First answer.")
    await tickets.staff_reply(ticket.id, staff_id="agent-1", text="Second answer.")
    await visitor.message_containing("Second answer.")

    answer = await visitor.call("missed", {"after": acknowledgement["seq"]})
    assert answer["ok"] is True
    texts = [m["text"] for m in answer["messages"]]
    assert len(texts) == 2
    assert "First answer." in texts[0]
    assert "Second answer." in texts[1]
    assert answer["through"] == answer["messages"][-1]["seq"]
    nothing_after = await visitor.call("missed", {"after": answer["through"]})
    assert nothing_after == {"ok": True, "messages": [], "through": answer["through"]}

    bad_asks: list[Any] = [{"after": -1}, {"after": "1"}, {"after": 2**60}, {"$where": "1"}, []]
    for bad in bad_asks:
        refused = await visitor.call("missed", bad)
        assert refused["ok"] is False
        assert refused["error"]["code"] == "invalid"


@pytest.mark.parametrize("asked_by", ["missed", "a reconnect's history"])
async def test_through_stops_short_of_a_number_another_process_is_still_storing(
    service: Service, visitor: WidgetVisitor, monkeypatch: pytest.MonkeyPatch, asked_by: str
) -> None:
    """Two processes write one customer's messages: number N is drawn by one (its write
    slow: a loaded database, a pause) when N+1 is stored by the other. `through` said N+1
    then, and the widget moved past N, for good if N's push was lost too."""
    acknowledgement = await visitor.give_feedback()
    customer = await customer_of(service.container.repos, visitor)
    ticket = await service.container.repos.tickets.latest_open(customer.id)
    assert ticket is not None
    settings = service.container.settings
    assert settings.mongodb_uri is not None
    other = Container.build(settings, settings.mongodb_uri)  # a second process of the service

    messages = service.container.repos.messages
    real_insert = messages.collection.insert_one
    drawn, release = asyncio.Event(), asyncio.Event()

    async def slow_insert(doc: Any, *args: Any, **kwargs: Any) -> Any:
        if "First answer." in str(doc.get("text", "")):
            drawn.set()
            await release.wait()
        return await real_insert(doc, *args, **kwargs)

    monkeypatch.setattr(messages.collection, "insert_one", slow_insert)
    back = WidgetVisitor(service.url, visitor=visitor.visitor)
    history: list[dict[str, Any]] = []
    back.client.on("history", history.append, namespace="/widget")
    tickets = service.container.tickets
    try:
        first = asyncio.create_task(
            tickets.staff_reply(ticket.id, staff_id="agent-1", text="First answer.")
        )
        await asyncio.wait_for(drawn.wait(), 10)
        await other.tickets.staff_reply(ticket.id, staff_id="agent-2", text="Second answer.")
        await visitor.message_containing("Second answer.")
        if asked_by == "missed":
            answer = await visitor.call("missed", {"after": acknowledgement["seq"]})
        else:
            await back.connect(back.auth(last_seq=acknowledgement["seq"]))
            (answer,) = history
        release.set()
        stored = await first
    finally:
        release.set()
        await other.database.close()
        await back.disconnect()
    answered = [m["seq"] for m in answer["messages"]]
    assert stored.seq not in answered
    assert answer["through"] < stored.seq  # so the widget asks again, and gets it


async def test_replay_works_across_a_restart_of_the_service(settings: Settings) -> None:
    configured = widget_settings(settings)
    async with serving(configured) as first:
        tab = WidgetVisitor(first.url)
        await tab.connect()
        acknowledgement = await tab.give_feedback()
        await tab.disconnect()
    async with serving(configured) as second:
        customer = await second.container.repos.customers.find(
            Channel.WIDGET, f"visitor:{tab.visitor}"
        )
        assert customer is not None
        ticket = await second.container.repos.tickets.latest_open(customer.id)
        assert ticket is not None
        await second.container.tickets.staff_reply(
            ticket.id, staff_id="agent-1", text="Answered while you were away."
        )
        back = WidgetVisitor(second.url, visitor=tab.visitor)
        await back.connect(back.auth(last_seq=0))  # a new device: everything
        await back.until(
            lambda: any("while you were away" in m["text"] for m in back.history), "the reply"
        )
        assert back.history[0]["seq"] == 1
        assert any(m["id"] == acknowledgement["id"] for m in back.history)
        await back.disconnect()


async def test_a_signed_user_is_the_same_customer_on_every_device(service: Service) -> None:
    expires = int(time.time()) + 3600
    signature = sign(SECRET, "shop-user-42", expires)
    phone, laptop = (
        WidgetVisitor(service.url, user="shop-user-42", signature=signature, expires=expires)
        for _ in range(2)
    )
    await phone.connect()
    await laptop.connect()
    await phone.send("command", "start")
    await laptop.until(
        lambda: laptop.states[-1]["prompt"] is not None, "the flow to show on the laptop"
    )
    assert laptop.states[-1]["prompt"]["step"] == "notice"
    ack = await laptop.send("choice", "yes")
    assert ack["replies"][-1]["step"] == "expanded_use"
    key = conversation_key(Channel.WIDGET.value, "user:shop-user-42")
    conversation = await service.container.repos.conversations.get(key)
    assert conversation is not None
    assert conversation.step == "expanded_use"
    await phone.disconnect()
    await laptop.disconnect()


def signed(user: str, expires: int, as_user: str | None = None) -> dict[str, Any]:
    return {
        "visitor": "v" * 22,
        "user": as_user or user,
        "expires": expires,
        "signature": sign(SECRET, user, expires),
    }


HOUR = 3600
NOW = int(time.time())


@pytest.mark.parametrize(
    ("auth", "code"),
    [
        ({"visitor": "v" * 22, "user": "shop-user-42", "signature": "0" * 64}, "bad_signature"),
        ({"visitor": "v" * 22, "user": "shop-user-42"}, "bad_signature"),
        (signed("shop-user-42", NOW - HOUR), "bad_signature"),  # expired
        (signed("shop-user-42", NOW + 30 * 24 * HOUR), "bad_signature"),  # dated too far ahead
        (signed("shop-user-1", NOW + HOUR, as_user="shop-user-42"), "bad_signature"),
        ({**signed("shop-user-42", NOW + HOUR), "expires": NOW + 2 * HOUR}, "bad_signature"),
        ({"visitor": "short"}, "bad_auth"),
        ({"visitor": "v" * 22, "$where": "sleep(1000)"}, "bad_auth"),
        ({"visitor": "v" * 22, "signature": sign(SECRET, "x", NOW + HOUR)}, "bad_auth"),
        ({"visitor": "v" * 22, "user": "u", "expires": "tomorrow"}, "bad_auth"),
        ("not an object", "bad_auth"),
    ],
)
async def test_an_identity_without_a_valid_signature_is_refused(
    service: Service, auth: Any, code: str
) -> None:
    tab = WidgetVisitor(service.url)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await tab.connect(auth, wait_state=False)
    await tab.disconnect()
    assert tab.refused is not None
    assert tab.refused["data"]["code"] == code
    assert tab.refused["data"]["message"]


async def test_a_page_on_another_origin_is_refused(settings: Settings) -> None:
    configured = widget_settings(settings, widget_allowed_origins="https://shop.example.com")
    async with serving(configured) as service:
        stranger = WidgetVisitor(service.url, origin="https://evil.example.net")
        with pytest.raises(socketio.exceptions.ConnectionError):
            await stranger.connect(wait_state=False)
        await stranger.disconnect()
        shop = WidgetVisitor(service.url, origin="https://shop.example.com")
        await shop.connect()
        assert shop.states
        await shop.disconnect()


@pytest.mark.parametrize(
    "payload",
    [
        {"client_id": "abcdefgh", "kind": "text", "value": "hi", "$where": "1 == 1"},
        {"client_id": "abcdefgh", "kind": "text", "value": {"$gt": ""}},
        {"client_id": "abcdefgh", "kind": "eval", "value": "x"},
        {"client_id": "../../etc", "kind": "text", "value": "x"},
        {"client_id": "abcdefgh", "kind": "text", "value": "broken \ud800 text"},
        {"client_id": "abcdefgh", "kind": "command", "value": "drop_database"},
        ["client_id", "kind"],
        "just a string",
        None,
    ],
)
async def test_malformed_and_hostile_inputs_are_refused_and_change_nothing(
    service: Service, visitor: WidgetVisitor, payload: Any
) -> None:
    await visitor.send("command", "start")
    key = conversation_key(Channel.WIDGET.value, f"visitor:{visitor.visitor}")
    before = await service.container.repos.conversations.get(key)
    answer = await visitor.call("input", payload)
    assert answer["ok"] is False
    assert answer["error"]["code"] == "invalid"
    assert answer["error"]["message"]
    assert await service.container.repos.conversations.get(key) == before


async def test_too_long_text_gets_a_clear_error(visitor: WidgetVisitor) -> None:
    answer = await visitor.send("text", "x" * 4001)
    assert answer["ok"] is False
    assert answer["error"]["code"] == "too_large"
    assert "4000" in answer["error"]["message"]


async def test_script_tags_are_stored_as_inert_text(
    service: Service, visitor: WidgetVisitor
) -> None:
    await visitor.give_feedback("<script>alert('x')</script> the page is blank")
    customer = await service.container.repos.customers.find(
        Channel.WIDGET, f"visitor:{visitor.visitor}"
    )
    assert customer is not None
    ticket = await service.container.repos.tickets.latest_open(customer.id)
    assert ticket is not None
    assert ticket.text == "<script>alert('x')</script> the page is blank"


async def test_an_oversized_frame_closes_only_that_connection(
    service: Service, visitor: WidgetVisitor
) -> None:
    big = WidgetVisitor(service.url)
    await big.connect()
    with pytest.raises(socketio.exceptions.SocketIOError):
        await big.send("text", "x" * 100_000)  # over BOT_WIDGET_MAX_PAYLOAD_BYTES
    await big.until(lambda: not big.client.connected, "the oversized connection to close")
    await big.disconnect()
    answer = await visitor.send("command", "start")  # everyone else carries on
    assert answer["ok"]


async def test_too_many_events_are_rate_limited(settings: Settings) -> None:
    configured = widget_settings(settings, widget_rate_per_connection="3 per 30 seconds")
    async with serving(configured) as service:
        tab = WidgetVisitor(service.url)
        await tab.connect()
        answers = [await tab.send("command", "help") for _ in range(4)]
        assert [a["ok"] for a in answers] == [True, True, True, False]
        assert answers[-1]["error"]["code"] == "rate_limited"
        await tab.disconnect()


async def test_inputs_past_the_bound_in_flight_are_answered_busy_and_kept_when_resent(
    settings: Settings,
) -> None:
    async with serving(widget_settings(settings, inputs_in_flight=2)) as service:
        tab = WidgetVisitor(service.url)
        await tab.connect()
        await tab.give_feedback()
        admission = service.container.widget.admission
        # Two inputs of other customers are being worked on: the process is at its bound.
        with admission.slot("widget") as first, admission.slot("widget") as second:
            assert first
            assert second
            busy = await tab.send("text", "The parcel came late again.", client_id="late-0001")
        assert busy["ok"] is False
        # `unavailable`, which every widget retries, with a hint that it is only a moment
        assert busy["error"]["code"] == "unavailable"
        assert busy["error"]["retry_after_ms"] == 500
        assert "in a moment" in busy["error"]["message"]  # localized, not the code
        metrics = service.container.metrics
        assert metrics.inputs_refused.labels("widget")._value.get() == 1
        assert metrics.widget_events.labels("input", "busy")._value.get() == 1
        # Nothing was stored; the widget's retry with the same client_id is kept, once.
        again = await tab.send("text", "The parcel came late again.", client_id="late-0001")
        assert again["ok"] is True
        assert isinstance(again["seq"], int)
        assert again.get("duplicate") is None
        assert admission.in_flight == 0
        await tab.disconnect()


async def test_busy_answers_do_not_use_up_the_customers_rate_limit(settings: Settings) -> None:
    configured = widget_settings(
        settings, inputs_in_flight=1, widget_rate_per_connection="3 per 30 seconds"
    )
    async with serving(configured) as service:
        tab = WidgetVisitor(service.url)
        await tab.connect()
        with service.container.widget.admission.slot("widget"):  # at capacity
            for _ in range(5):  # the widget's retries while the service is busy
                busy = await tab.send("command", "help")
                assert busy["error"]["code"] == "unavailable"
        answers = [await tab.send("command", "help") for _ in range(4)]
        assert [a["ok"] for a in answers] == [True, True, True, False]  # all 3 still there
        await tab.disconnect()


async def test_connections_per_ip_are_limited(settings: Settings) -> None:
    configured = widget_settings(settings, widget_connects_per_ip="2 per minute")
    async with serving(configured) as service:
        tabs = [WidgetVisitor(service.url) for _ in range(3)]
        await tabs[0].connect()
        await tabs[1].connect()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await tabs[2].connect(wait_state=False)
        await tabs[2].disconnect()
        assert tabs[2].refused is not None
        assert tabs[2].refused["data"]["code"] == "rate_limited"
        for tab in tabs[:2]:
            await tab.disconnect()


async def test_c5_2_a_photo_is_uploaded_and_attached(
    service: Service, visitor: WidgetVisitor
) -> None:
    await visitor.to_attachments()
    grant = await visitor.call("upload", {})
    assert grant["ok"]
    assert "image/png" in grant["types"]
    status, body = await upload(service, grant["token"], png(), name="../../lid.png")
    assert status == 201, body
    assert body["name"].endswith("lid.png")  # a name to show, never a path
    assert "/" not in body["name"]
    answer = await visitor.send("file", body["upload_id"])
    assert answer["ok"], answer
    for value in ("done", "skip", "submit"):
        await visitor.send("choice", value)
    customer = await service.container.repos.customers.find(
        Channel.WIDGET, f"visitor:{visitor.visitor}"
    )
    assert customer is not None
    ticket = await service.container.repos.tickets.latest_open(customer.id)
    assert ticket is not None
    (attachment,) = ticket.attachments
    assert attachment.kind == "photo"
    assert attachment.file_ref == f"upload:{body['upload_id']}"
    stored = await service.container.repos.uploads.get(body["upload_id"])
    assert stored is not None
    assert stored.content == png()

    again, refused = await upload(service, grant["token"], png())  # a token is good once
    assert again == 401
    assert refused["error"]["code"] == "expired"


async def test_uploads_of_the_wrong_kind_or_size_are_refused(
    settings: Settings,
) -> None:
    configured = widget_settings(settings, widget_upload_max_bytes=2048)
    async with serving(configured) as service:
        tab = WidgetVisitor(service.url)
        await tab.connect()
        await tab.to_attachments()

        async def attempt(content: bytes, mime: str) -> tuple[int, str]:
            grant = await tab.call("upload", {})
            status, body = await upload(service, grant["token"], content, mime=mime)
            return status, body["error"]["code"]

        assert await attempt(b"MZ\x90\x00 not an image", "image/png") == (415, "unsupported_type")
        assert await attempt(b"<svg onload=alert(1)>", "image/svg+xml") == (415, "unsupported_type")
        assert await attempt(png() + b"\x00" * 4096, "image/png") == (413, "file_too_large")
        status, body = await upload(service, "forged-token", png())
        assert (status, body["error"]["code"]) == (401, "expired")

        # Someone else's upload id is not found, even when it exists.
        grant = await tab.call("upload", {})
        _, mine = await upload(service, grant["token"], png())
        other = WidgetVisitor(service.url)
        await other.connect()
        await other.send("command", "start")
        answer = await other.send("file", mine["upload_id"])
        assert answer["error"]["code"] == "not_found"
        await tab.disconnect()
        await other.disconnect()


@pytest.mark.parametrize(("locale", "send"), [("zh-CN", "发送"), ("en-US", "Send")])
async def test_the_widget_labels_come_from_the_catalogs(
    service: Service, locale: str, send: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(service.url + "/widget/strings.json", params={"locale": locale}) as response,
    ):
        body = await response.json()
    assert body["strings"]["send"] == send
    assert body["strings"]["unread"].count("{count}") == 1


async def test_the_language_can_be_switched(visitor: WidgetVisitor) -> None:
    await visitor.send("command", "start")
    answer = await visitor.call("language", {"locale": "zh_CN"})
    assert answer["ok"]
    assert answer["strings"]["send"] == "发送"
    assert "隐私告知" in answer["replies"][-1]["text"]
    refused = await visitor.call("language", {"locale": "fr"})
    assert refused["error"]["code"] == "invalid"


async def test_the_service_survives_a_burst_of_connections(service: Service) -> None:
    tabs = [WidgetVisitor(service.url) for _ in range(10)]
    await asyncio.gather(*(tab.connect() for tab in tabs))
    answers = await asyncio.gather(*(tab.send("command", "start") for tab in tabs))
    assert all(a["ok"] for a in answers)
    await asyncio.gather(*(tab.disconnect() for tab in tabs))


async def test_c3_1_7_a_repeated_click_on_i_agree_does_not_answer_the_next_question(
    visitor: WidgetVisitor,
) -> None:
    await visitor.send("command", "start")
    click = {"client_id": "click-001", "kind": "choice", "value": "yes", "step": "notice"}
    await visitor.call("input", click)
    late = await visitor.call(
        "input", {"client_id": "click-002", "kind": "choice", "value": "yes", "step": "notice"}
    )
    assert [r["step"] for r in late["replies"]] == ["expanded_use"]  # asked, not answered


async def test_the_ack_says_when_the_flow_is_over(visitor: WidgetVisitor) -> None:
    ack = await visitor.send("command", "start")
    assert ack["prompt"]["step"] == "notice"
    ack = await visitor.send("command", "cancel")
    assert ack["prompt"] is None


async def test_typed_commands_work_and_never_land_on_the_ticket(
    service: Service, visitor: WidgetVisitor
) -> None:
    acknowledgement = await visitor.give_feedback()
    assert "Our replies appear in this chat" in acknowledgement["text"]
    assert "/status" in acknowledgement["text"]
    status = await visitor.send("text", "/status")
    reference = acknowledgement["text"].split("reference number is ")[1].split(".")[0]
    assert reference in status["replies"][0]["text"]
    assert status["seq"] is None
    helped = await visitor.send("text", "/whatever")
    assert "Give feedback" in helped["replies"][0]["text"]
    menu = await visitor.send("text", "/privacy")
    assert menu["prompt"]["step"] == "privacy"  # the privacy menu, beside the flow
    started = await visitor.send("text", "/start")
    assert started["prompt"]["step"] == "category"  # consents given once are not asked again
    customer = await service.container.repos.customers.find(
        Channel.WIDGET, f"visitor:{visitor.visitor}"
    )
    assert customer is not None
    stored = await service.container.repos.messages.after_seq(customer.id, 0)
    assert not [m for m in stored if m.direction is Direction.INBOUND]


async def test_c6_2_no_upload_before_consent_or_outside_the_attachments_question(
    visitor: WidgetVisitor,
) -> None:
    refused = await visitor.call("upload", {})
    assert refused["error"]["code"] == "not_now"  # nothing agreed yet: no files
    await visitor.send("command", "start")
    await visitor.send("choice", "yes")
    refused = await visitor.call("upload", {})
    assert refused["error"]["code"] == "not_now"  # consent given, but files are not asked


async def test_a_new_page_gets_the_latest_history_only(
    service: Service, visitor: WidgetVisitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(widget_channel, "REPLAY_NEW", 2)
    acknowledgement = await visitor.give_feedback()
    customer = await service.container.repos.customers.find(
        Channel.WIDGET, f"visitor:{visitor.visitor}"
    )
    assert customer is not None
    ticket = await service.container.repos.tickets.latest_open(customer.id)
    assert ticket is not None
    for n in range(3):
        await service.container.tickets.staff_reply(ticket.id, staff_id="a", text=f"Reply {n}.")
    await visitor.message_containing("Reply 2.")
    page = WidgetVisitor(service.url, visitor=visitor.visitor)
    await page.connect(page.auth(last_seq=0))
    await page.until(lambda: len(page.history) == 2, "the latest two messages")
    assert ["Reply 1." in page.history[0]["text"], "Reply 2." in page.history[1]["text"]] == [
        True,
        True,
    ]
    assert acknowledgement["seq"] < page.history[0]["seq"]
    await page.disconnect()


async def test_an_answer_to_a_question_no_longer_asked_is_not_applied(
    service: Service, visitor: WidgetVisitor
) -> None:
    await visitor.send("command", "start")
    for value in ("yes", "yes", "yes", "logistics"):
        await visitor.send("choice", value)
    # Another device already answered "category"; this one still shows it and sends text.
    late = await visitor.send("text", "Late and broken.", step="category")
    assert late["prompt"]["step"] == "rating"
    key = conversation_key(Channel.WIDGET.value, f"visitor:{visitor.visitor}")
    conversation = await service.container.repos.conversations.get(key)
    assert conversation is not None
    assert conversation.step == "rating"
    assert "text" not in conversation.answers


async def test_words_kept_but_answered_unavailable_wake_the_ticket_when_sent_again(
    service: Service, visitor: WidgetVisitor
) -> None:
    """Words stored whose follow-up failed (the ticket's lock held by another process)
    are answered `unavailable`; the widget's resend wakes the waiting ticket and tells
    staff, once. (It used to answer `error`, and the resend, a duplicate, did neither.)"""
    await visitor.give_feedback()
    repos, tickets = service.container.repos, service.container.tickets
    customer = await customer_of(repos, visitor)
    ticket = await repos.tickets.latest_open(customer.id)
    assert ticket is not None
    await tickets.change_status(ticket.id, TicketStatus.IN_PROGRESS, actor="agent-1")
    await tickets.change_status(ticket.id, TicketStatus.WAITING_FOR_CUSTOMER, actor="agent-1")
    views = StaffViews()
    tickets.listeners.append(views)
    words = "Here is the order number: 4711."
    held = await repos.locks.acquire(f"ticket:{ticket.id}", timedelta(seconds=30))
    assert held is not None  # another process is changing the ticket
    first = await visitor.send("text", words, client_id="wake-0001")
    assert first["ok"] is False
    assert first["error"]["code"] == "unavailable"
    await repos.locks.release(held)
    again = await visitor.send("text", words, client_id="wake-0001")
    assert again["ok"] is True
    assert again["duplicate"] is True
    after = await repos.tickets.get(ticket.id)
    assert after is not None
    assert after.status is TicketStatus.IN_PROGRESS
    assert views.customer_words == [words]
    once_more = await visitor.send("text", words, client_id="wake-0001")
    assert once_more["duplicate"] is True
    assert views.customer_words == [words]  # told once
    stored = [m.text for m in await repos.messages.after_seq(customer.id, 0)]
    assert stored.count(words) == 1


async def test_blank_words_are_refused_and_nothing_is_stored(
    service: Service, visitor: WidgetVisitor
) -> None:
    await visitor.give_feedback()
    repos = service.container.repos
    customer = await customer_of(repos, visitor)
    before = len(await repos.messages.after_seq(customer.id, 0))
    for blank in ("   ", "\x00\x07", "\r\n\t"):
        answer = await visitor.send("text", blank)
        assert answer["ok"] is False
        assert answer["error"]["code"] == "invalid"
    assert len(await repos.messages.after_seq(customer.id, 0)) == before


async def test_words_sent_again_after_another_device_began_a_flow_are_a_duplicate(
    service: Service, visitor: WidgetVisitor
) -> None:
    """Words kept on the ticket whose answer was lost, sent again once the customer's
    other device has begun a new feedback and reached its text question: a duplicate,
    not the new feedback's text."""
    await visitor.give_feedback()
    words = "The courier left it at the wrong door."
    first = await visitor.send("text", words, client_id="words-0001")
    assert first["ok"] is True  # kept; say this answer never arrived
    laptop = WidgetVisitor(service.url, visitor=visitor.visitor)
    await laptop.connect()
    try:
        await laptop.send("command", "start")
        await laptop.send("choice", "logistics", step="category")
        at_text = await laptop.send("choice", "3", step="rating")
        assert at_text["prompt"]["step"] == "text"
        again = await visitor.send("text", words, client_id="words-0001")
    finally:
        await laptop.disconnect()
    assert again["ok"] is True
    assert again["duplicate"] is True
    assert again["seq"] == first["seq"]
    key = conversation_key(Channel.WIDGET.value, f"visitor:{visitor.visitor}")
    conversation = await service.container.repos.conversations.get(key)
    assert conversation is not None
    assert conversation.step == "text"  # still asking the new feedback's words
    assert "text" not in conversation.answers
