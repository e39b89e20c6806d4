"""The privacy menu in the widget (C3.2.6): the real service, a real socket.io client, the real
database. The menu itself (what each choice does) is tested in the services' tests; these
tests prove what the widget channel adds: the command, the file in the chat, the erase
reaching every device of the customer, and hostile answers kept harmless."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio

from bot.config import Settings
from bot.domain.models import Channel
from bot.domain.privacy import conversation_key
from tests.channels.service import Service, serving
from tests.channels.widget import NAMESPACE, WidgetVisitor, customer_of, sign
from tests.support import configured

SECRET = "host-app-secret-for-tests"


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Service]:
    async with serving(configured(settings, widget_identity_secret=SECRET)) as started:
        yield started


@pytest.fixture
async def visitor(service: Service) -> AsyncIterator[WidgetVisitor]:
    tab = WidgetVisitor(service.url)
    await tab.connect()
    yield tab
    await tab.disconnect()


def listen_for_erased(tab: WidgetVisitor) -> list[Any]:
    """The `erased` events this tab receives (the shared helper does not collect them)."""
    received: list[Any] = []

    async def on_erased(data: Any) -> None:
        received.append(data)

    tab.client.on("erased", on_erased, namespace=NAMESPACE)
    return received


def signed_tab(service: Service, user: str) -> WidgetVisitor:
    expires = int(time.time()) + 3600
    return WidgetVisitor(
        service.url, user=user, signature=sign(SECRET, user, expires), expires=expires
    )


async def open_menu(tab: WidgetVisitor) -> dict[str, Any]:
    ack = await tab.send("command", "privacy")
    assert ack["ok"], ack
    return ack


async def erase(tab: WidgetVisitor) -> dict[str, Any]:
    """My data, Delete my data, Yes: the acknowledgement of the last click."""
    await open_menu(tab)
    ack = await tab.send("choice", "privacy_erase", step="privacy")
    assert ack["prompt"]["step"] == "privacy_erase", ack
    ack = await tab.send("choice", "erase_yes", step="privacy_erase")
    assert ack["ok"], ack
    return ack


async def test_c3_2_6_my_data_opens_the_menu_by_command_and_by_typing_privacy(
    visitor: WidgetVisitor,
) -> None:
    # Before any consent nothing is held, and the answer says so (no menu to show).
    ack = await open_menu(visitor)
    assert ack["prompt"] is None
    assert [r["step"] for r in ack["replies"]] == [None]
    assert "no personal data" in ack["replies"][0]["text"]
    assert ack["replies"][0]["file"] is None
    assert ack["replies"][0]["erased"] is False

    await visitor.give_feedback()
    ack = await open_menu(visitor)
    menu = ack["replies"][-1]
    assert menu["step"] == "privacy"
    assert ack["prompt"]["step"] == "privacy"
    values = [o["value"] for o in menu["options"]]
    assert {"see", "export", "privacy_erase"} <= set(values)
    assert menu["file"] is None
    assert menu["erased"] is False

    ack = await visitor.send("command", "cancel")
    assert ack["prompt"] is None
    ack = await visitor.send("text", "/privacy")  # typed, as in the Telegram bot
    assert ack["ok"], ack
    assert ack["replies"][-1]["step"] == "privacy"
    assert ack["seq"] is None  # a command, never words on the ticket


async def test_c3_2_6_export_is_delivered_in_the_widget(service: Service) -> None:
    mine, other = WidgetVisitor(service.url), WidgetVisitor(service.url)
    await mine.connect()
    await other.connect()
    await mine.give_feedback("My parcel came with a dented lid, order 4411.")
    await other.give_feedback("Somebody else's words about the coupon field.")

    await open_menu(mine)
    ack = await mine.send("choice", "export", step="privacy")
    assert ack["ok"], ack
    with_file = [r for r in ack["replies"] if r["file"] is not None]
    assert len(with_file) == 1
    file = with_file[0]["file"]
    assert re.fullmatch(r"feedback-data-\d{4}-\d{2}-\d{2}\.json", file["name"])
    assert file["mime_type"] == "application/json"
    raw = base64.b64decode(file["data"], validate=True)
    document = json.loads(raw.decode("utf-8"))
    assert document["customer"]["channel"] == "widget"
    assert document["customer"]["channel_user_id"] == f"visitor:{mine.visitor}"
    assert [t["text"] for t in document["tickets"]] == [
        "My parcel came with a dented lid, order 4411."
    ]
    assert document["consents"]
    # Nothing of the other visitor: not their words, not who they are.
    assert "coupon field" not in raw.decode("utf-8")
    assert other.visitor not in raw.decode("utf-8")
    assert ack["prompt"] is None  # the menu closed after the download
    await mine.disconnect()
    await other.disconnect()


async def test_c3_2_6_an_erase_reaches_every_device_of_the_customer_and_no_one_else(
    service: Service,
) -> None:
    phone, laptop = signed_tab(service, "shop-user-7"), signed_tab(service, "shop-user-7")
    stranger = signed_tab(service, "shop-user-8")
    heard = {tab: listen_for_erased(tab) for tab in (phone, laptop, stranger)}
    for tab in (phone, laptop, stranger):
        await tab.connect()
    await phone.give_feedback("The app logs me out every morning.")
    await stranger.give_feedback("The stranger's own feedback stays.")

    ack = await erase(phone)
    assert [r["erased"] for r in ack["replies"]] == [True]
    assert "deleted" in ack["replies"][0]["text"]
    assert ack["prompt"] is None
    await laptop.until(lambda: heard[laptop] == [{}], "the erase to reach the laptop")
    assert heard[phone] == []  # the device that asked learns it from its acknowledgement
    # The stranger hears nothing, even after a round trip of its own.
    assert (await stranger.send("command", "help"))["ok"]
    assert heard[stranger] == []

    repos = service.container.repos
    assert await repos.customers.find(Channel.WIDGET, "user:shop-user-7") is None
    assert await repos.customers.find(Channel.WIDGET, "user:shop-user-8") is not None

    # The laptop starts afresh, as the widget does: last_seq 0, and nothing comes back.
    await laptop.disconnect()
    again = signed_tab(service, "shop-user-7")
    await again.connect(again.auth(last_seq=0))
    assert again.history == []
    assert again.states[-1]["prompt"] is None
    for tab in (phone, stranger, again):
        await tab.disconnect()


async def test_c3_2_6_after_an_erase_the_visitor_is_gone_and_a_reconnect_replays_nothing(
    service: Service, visitor: WidgetVisitor
) -> None:
    await visitor.give_feedback("Delete me afterwards, please.")
    repos = service.container.repos
    customer = await customer_of(repos, visitor)
    assert await repos.messages.after_seq(customer.id, 0)

    ack = await erase(visitor)
    assert any(r["erased"] for r in ack["replies"])
    assert await repos.customers.find(Channel.WIDGET, f"visitor:{visitor.visitor}") is None
    assert await repos.messages.after_seq(customer.id, 0) == []
    key = conversation_key(Channel.WIDGET.value, f"visitor:{visitor.visitor}")
    assert await repos.conversations.get(key) is None

    await visitor.disconnect()
    back = WidgetVisitor(service.url, visitor=visitor.visitor)
    await back.connect(back.auth(last_seq=0))
    assert back.history == []
    assert back.states[-1]["prompt"] is None
    # Nothing is held any more: the menu says so instead of opening.
    ack = await open_menu(back)
    assert ack["prompt"] is None
    assert "no personal data" in ack["replies"][0]["text"]
    await back.disconnect()


HOSTILE = [
    {"client_id": "hostile-01", "kind": "choice", "value": "export", "$where": "1 == 1"},
    {"client_id": "hostile-02", "kind": "choice", "value": {"$gt": ""}, "step": "privacy"},
    {"client_id": "hostile-03", "kind": "choice", "value": "export", "step": {"$ne": None}},
    {"client_id": "hostile-04", "kind": "choice", "value": "export", "step": "$where"},
    {"client_id": "hostile-05", "kind": "text", "value": "\ud800 see", "step": "privacy"},
    {"client_id": "hostile-06", "kind": "choice", "value": "x" * 20001, "step": "privacy"},
    {"client_id": "hostile-07", "kind": "command", "value": "privacy; drop"},
]


@pytest.fixture
async def roomy(settings: Settings) -> AsyncIterator[Service]:
    """Frames of up to 64 KiB: 20000 characters reach the checks behind the frame limit.
    (And room for the many events of one test within the rate limit.)"""
    roomy = configured(
        settings,
        widget_identity_secret=SECRET,
        widget_max_payload_bytes=65536,
        widget_rate_per_connection="100 per 10 seconds",
    )
    async with serving(roomy) as started:
        yield started


async def test_hostile_values_in_a_privacy_answer_are_refused_and_change_nothing(
    roomy: Service,
) -> None:
    service = roomy
    visitor = WidgetVisitor(service.url)
    await visitor.connect()
    await visitor.give_feedback()
    await open_menu(visitor)
    key = conversation_key(Channel.WIDGET.value, f"visitor:{visitor.visitor}")
    repos = service.container.repos
    before = await repos.conversations.get(key)
    assert before is not None
    assert before.aside == {"step": "privacy"}
    for payload in HOSTILE:
        answer = await visitor.call("input", payload)
        assert answer["ok"] is False, payload
        assert answer["error"]["code"] == "invalid", payload
        assert await repos.conversations.get(key) == before, payload
    answer = await visitor.send("text", "x" * 20000, step="privacy")
    assert answer["error"]["code"] == "too_large"
    # Values of the right shape that mean nothing are asked again, not applied.
    for value in ("x" * 20000, "<script>alert(1)</script>", "erase_yes"):
        answer = await visitor.send("choice", value, step="privacy")
        assert answer["ok"], answer
        assert answer["prompt"]["step"] == "privacy"
        assert answer["replies"][-1]["error"]
        assert not any(r["erased"] or r["file"] for r in answer["replies"])
    assert await repos.customers.find(Channel.WIDGET, f"visitor:{visitor.visitor}") is not None
    assert (await visitor.send("choice", "see", step="privacy"))["ok"]  # still answering
    await visitor.disconnect()


async def test_20000_characters_over_the_frame_limit_close_only_that_connection(
    service: Service, visitor: WidgetVisitor
) -> None:
    await visitor.give_feedback()
    await open_menu(visitor)
    key = conversation_key(Channel.WIDGET.value, f"visitor:{visitor.visitor}")
    before = await service.container.repos.conversations.get(key)
    with pytest.raises(socketio.exceptions.SocketIOError):
        await visitor.send("text", "x" * 20000, step="privacy")  # over 16 KiB
    await visitor.until(lambda: not visitor.client.connected, "the connection to close")
    assert await service.container.repos.conversations.get(key) == before
    back = WidgetVisitor(service.url, visitor=visitor.visitor)
    await back.connect(back.auth(last_seq=0))
    assert back.states[-1]["prompt"]["step"] == "privacy"  # the menu, where it was
    await back.disconnect()


async def test_script_tags_in_privacy_answers_are_stored_as_inert_text(
    service: Service, visitor: WidgetVisitor
) -> None:
    await visitor.give_feedback()
    repos = service.container.repos
    customer = await customer_of(repos, visitor)

    await open_menu(visitor)
    ack = await visitor.send("choice", "privacy_contact", step="privacy")
    assert ack["prompt"]["step"] == "privacy_contact"
    ack = await visitor.send("text", "<script>alert(1)</script>", step="privacy_contact")
    assert ack["ok"], ack
    assert ack["prompt"]["step"] == "privacy_contact"  # not an e-mail or a phone: asked again
    assert ack["replies"][-1]["error"]
    stored = await repos.customers.find(Channel.WIDGET, f"visitor:{visitor.visitor}")
    assert stored is not None
    assert (stored.email, stored.phone) == (customer.email, customer.phone)

    await visitor.send("command", "back")
    ack = await visitor.send("choice", "correct", step="privacy")
    assert ack["prompt"]["step"] == "privacy_correction", ack
    words = '<script>alert(\'x\')</script> {"$where": "1"} I meant the cart page.'
    ack = await visitor.send("text", words, step="privacy_correction")
    assert ack["ok"], ack
    ticket = await repos.tickets.latest_open(customer.id)
    assert ticket is not None
    assert [c.text for c in ticket.corrections] == [words]


async def test_c3_2_6_a_device_away_during_the_erase_forgets_on_its_next_connect(
    service: Service,
) -> None:
    user = "away-user-42"
    here, away = signed_tab(service, user), signed_tab(service, user)
    await here.connect()
    try:
        await here.give_feedback("The lamp flickers after an hour.")
        await here.disconnect()
        await away.connect()
        await away.until(lambda: away.history, "the history on the other device")
        remembered = away.last_seq
        await away.disconnect()
        await here.connect()
        await here.send("command", "privacy")
        await here.send("choice", "privacy_erase", step="privacy")
        answer = await here.send("choice", "erase_yes", step="privacy_erase")
        assert answer["replies"][0]["erased"]
    finally:
        await here.disconnect()
    # The other device comes back remembering messages that no longer exist.
    erased: list[dict[str, object]] = []
    returning = signed_tab(service, user)
    returning.client.on("erased", erased.append, namespace=NAMESPACE)
    returning.last_seq = remembered
    await returning.connect(wait_state=False)
    try:
        await returning.until(lambda: erased, "the erased event")
        assert returning.history == []  # nothing replayed from the new numbering
    finally:
        await returning.disconnect()
