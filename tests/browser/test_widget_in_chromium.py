"""The widget and the form as a customer uses them: clicking and typing in real Chromium."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

import bot.channels.widget as widget_channel
from bot.config import Settings
from bot.domain.models import Channel
from bot.services.delivery import Sent
from tests.channels.service import Service, serving
from tests.services.chat import Chat
from tests.support import configured, eventually

REFERENCE = re.compile(r"FB-\d{4}-\d{6}")


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Service]:
    async with serving(settings) as started:
        yield started


async def choose(page: Page, value: str) -> None:
    """Click an option of the current question (the only prompt with buttons)."""
    await page.locator(f'[data-testid="option"][data-value="{value}"]').click()


async def test_c3_1_3_a_customer_gives_feedback_in_the_widget_and_sees_a_reply_live(
    browser: Browser, service: Service, artifacts: Path
) -> None:
    context = await browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(service.url + "/demo")

    await page.get_by_test_id("launcher").click()
    panel = page.get_by_test_id("panel")
    await expect(panel).to_be_visible()
    await expect(page.get_by_test_id("status")).to_have_attribute("data-state", "online")
    await page.get_by_test_id("start").click()
    await expect(panel).to_contain_text("privacy notice")
    for value in ("yes", "no", "yes", "logistics", "2"):
        await choose(page, value)
    box = page.get_by_test_id("input")
    await box.fill("The parcel arrived <b>two</b> days late.")
    await box.press("Enter")
    await choose(page, "done")
    await choose(page, "skip")
    await choose(page, "submit")

    ack = page.locator('[data-testid="message"][data-author="bot"]', has_text="reference number")
    await expect(ack).to_be_visible()
    await expect(page.get_by_test_id("option")).to_have_count(0)  # sent: no question left
    await expect(page.get_by_test_id("start")).to_be_visible()
    reference = REFERENCE.search(await ack.inner_text())
    assert reference is not None
    ticket = await service.container.repos.tickets.by_reference(reference.group())
    assert ticket is not None
    assert ticket.channel is Channel.WIDGET
    assert ticket.text == "The parcel arrived <b>two</b> days late."  # inert text
    await expect(panel.locator("b")).to_have_count(0)  # shown as text, never as markup

    await service.container.tickets.staff_reply(
        ticket.id, staff_id="agent-1", text="Sorry about that: a voucher is on its way."
    )
    reply = page.locator('[data-testid="message"][data-author="staff"]')
    await expect(reply).to_contain_text("a voucher is on its way")
    await expect(reply).to_be_in_viewport()  # the list follows new messages
    await page.screenshot(path=str(artifacts / "widget-staff-reply.png"))

    await page.reload()
    await page.get_by_test_id("launcher").click()
    await expect(reply).to_contain_text("a voucher is on its way")  # the history, from MongoDB
    await expect(ack).to_be_visible()
    await expect(panel).to_have_css("opacity", "1")  # the opening animation is over
    await page.screenshot(path=str(artifacts / "widget-after-reload.png"))
    assert errors == []
    await context.close()


async def test_c3_2_2_a_reply_whose_push_was_lost_is_fetched_when_the_next_one_comes(
    browser: Browser, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push lost on its way (Redis took it, the widget never got it: a process was
    making its subscription again) used to stay missing until the next reconnect. The
    next message's number shows the gap, and the widget asks for what it missed."""
    context = await browser.new_context(locale="en-US")
    page = await context.new_page()
    await page.goto(service.url + "/demo")
    await page.get_by_test_id("launcher").click()
    await expect(page.get_by_test_id("status")).to_have_attribute("data-state", "online")
    visitor = json.loads(await page.evaluate("localStorage.getItem('feedback-widget:visitor')"))
    chat = Chat(service.container, f"visitor:{visitor}", "en", Channel.WIDGET)
    await chat.happy_path()  # on another device of theirs: the acknowledgement is pushed here
    bot = page.locator('[data-testid="message"][data-author="bot"]')
    await expect(bot).to_contain_text("reference number")
    customer = await service.container.repos.customers.find(Channel.WIDGET, chat.user)
    assert customer is not None
    (ticket,) = await service.container.repos.tickets.all_for_customer(customer.id)

    sender = service.container.delivery.senders[Channel.WIDGET]
    real_send = sender.send
    lost: list[str] = []

    async def losing(message: Any, *args: Any) -> Any:
        if not lost:
            lost.append(message.id)
            return Sent()  # taken for delivery, never arrived
        return await real_send(message, *args)

    async def pushed() -> list[str] | None:
        return lost or None

    monkeypatch.setattr(sender, "send", losing)
    tickets = service.container.tickets
    await tickets.staff_reply(ticket.id, staff_id="agent-1", text="First: we are on it.")
    await eventually(pushed, "the first reply's push, lost")
    await tickets.staff_reply(ticket.id, staff_id="agent-1", text="Second: a voucher is coming.")
    staff = page.locator('[data-testid="message"][data-author="staff"]')
    await expect(staff).to_have_count(2, timeout=10000)  # no reconnect: asked for it
    texts = await staff.all_inner_texts()
    assert "First: we are on it." in texts[0]
    assert "Second: a voucher is coming." in texts[1]
    await context.close()


async def test_a_gap_seen_before_a_new_pages_replay_is_over_waits_for_the_replay(
    browser: Browser, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new page gets the latest messages only. A push that came while its replay was
    slow made the widget ask `missed` from 0: old history was shown, counted unread."""
    context = await browser.new_context(locale="en-US")
    page = await context.new_page()
    await page.goto(service.url + "/demo")
    await page.get_by_test_id("launcher").click()  # open: what arrives is read
    await expect(page.get_by_test_id("status")).to_have_attribute("data-state", "online")
    visitor = json.loads(await page.evaluate("localStorage.getItem('feedback-widget:visitor')"))
    chat = Chat(service.container, f"visitor:{visitor}", "en", Channel.WIDGET)
    await chat.happy_path()
    messages = page.locator('[data-testid="message"]')
    await expect(messages.filter(has_text="reference number")).to_have_count(1)
    customer = await service.container.repos.customers.find(Channel.WIDGET, chat.user)
    assert customer is not None
    (ticket,) = await service.container.repos.tickets.all_for_customer(customer.id)
    tickets = service.container.tickets
    await tickets.staff_reply(ticket.id, staff_id="agent-1", text="Old reply, read.")
    await expect(messages.filter(has_text="Old reply, read.")).to_have_count(1)

    monkeypatch.setattr(widget_channel, "REPLAY_NEW", 1)  # stands in for the latest 200
    channel = service.container.widget
    real_replay = channel._replay

    async def slow_replay(*args: Any) -> None:
        await asyncio.sleep(4)  # a loaded server
        await real_replay(*args)

    monkeypatch.setattr(channel, "_replay", slow_replay)
    await page.reload()  # the panel stays closed
    await expect(page.get_by_test_id("status")).to_have_attribute("data-state", "online")
    await tickets.staff_reply(ticket.id, staff_id="agent-1", text="New reply.")
    await expect(messages.filter(has_text="New reply.")).to_have_count(1)
    await asyncio.sleep(6)  # the replay (4 s) is over, and a gap would have been asked for
    await expect(messages.filter(has_text="reference number")).to_have_count(0)
    await expect(page.get_by_test_id("badge")).to_have_text("1")
    await context.close()


async def test_the_widget_speaks_chinese_and_works_on_a_phone(
    browser: Browser, service: Service, artifacts: Path
) -> None:
    context = await browser.new_context(
        locale="zh-CN", viewport={"width": 375, "height": 700}, has_touch=True, is_mobile=True
    )
    page = await context.new_page()
    await page.goto(service.url + "/demo")
    launcher = page.get_by_test_id("launcher")
    await expect(launcher).to_have_accessible_name(re.compile("反馈"))
    await launcher.click()
    await page.get_by_test_id("start").click()
    await expect(page.get_by_test_id("panel")).to_contain_text("隐私告知")
    panel_box = await page.get_by_test_id("panel").bounding_box()
    assert panel_box is not None
    assert panel_box["width"] >= 370  # full screen on a narrow screen
    await page.screenshot(path=str(artifacts / "widget-phone-zh.png"))

    await page.keyboard.press("Escape")  # keyboard: Escape closes the panel
    await expect(page.get_by_test_id("panel")).to_be_hidden()
    await context.close()


async def test_a_message_the_service_was_too_busy_to_take_is_sent_again_by_itself(
    browser: Browser, settings: Settings
) -> None:
    async with serving(configured(settings, inputs_in_flight=1)) as service:
        context = await browser.new_context(locale="en-US")
        page = await context.new_page()
        await page.goto(service.url + "/demo")
        await page.get_by_test_id("launcher").click()
        await expect(page.get_by_test_id("status")).to_have_attribute("data-state", "online")
        admission = service.container.widget.admission
        with admission.slot("widget") as taken:  # another customer's input, being worked on
            assert taken
            box = page.get_by_test_id("input")
            await box.fill("Hello, is anyone there?")
            await box.press("Enter")
            mine = page.locator('[data-testid="message"][data-author="customer"]')
            await expect(mine).to_have_attribute("data-pending", "true")
            # Busy twice (at once, and at the quick retry): now the customer is told.
            error = page.get_by_test_id("error")
            await expect(error).to_contain_text("Many people are writing", timeout=5000)
        # The bound is free again: the widget's next retry (2-3 s) gets it through.
        await expect(mine).not_to_have_attribute("data-pending", "true", timeout=10000)
        await expect(page.get_by_test_id("panel")).to_contain_text("privacy notice")
        assert service.container.metrics.inputs_refused.labels("widget")._value.get() >= 2
        await context.close()


async def test_c2_2_the_online_form_files_a_ticket_without_javascript(
    browser: Browser, service: Service, artifacts: Path
) -> None:
    context = await browser.new_context(locale="en-US", java_script_enabled=False)
    page = await context.new_page()
    await page.goto(service.url + "/feedback?lang=en")
    await page.locator('input[name="consent_processing"]').check()
    await page.locator('input[name="consent_licence"]').check()
    await page.locator('input[name="category"][value="price"]').check()
    await page.locator('input[name="rating"][value="4"]').check()
    await page.locator('textarea[name="text"]').fill("Fair prices, but shipping costs too much.")
    await page.locator("#submit").click()
    await expect(page.locator("body")).to_contain_text("Your reference number is")
    reference = REFERENCE.search(await page.locator("body").inner_text())
    assert reference is not None
    await page.screenshot(path=str(artifacts / "form-done.png"))
    ticket = await service.container.repos.tickets.by_reference(reference.group())
    assert ticket is not None
    assert ticket.channel is Channel.FORM
    assert ticket.category.value == "price"
    assert ticket.rating == 4
    await context.close()
