"""The widget's "My data" menu as a customer uses it, in real Chromium (C3.2.6): download a
copy of their data, then delete it, and see the browser keep nothing of it."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from bot.config import Settings
from bot.domain.models import Channel
from tests.channels.service import Service, serving

PREFIX = "feedback-widget:"


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Service]:
    async with serving(settings) as started:
        yield started


async def choose(page: Page, value: str) -> None:
    """Click an option of the current question (the only prompt with buttons)."""
    await page.locator(f'[data-testid="option"][data-value="{value}"]').click()


def record_connects(page: Page) -> list[dict[str, Any]]:
    """The `auth` of every Socket.IO connect the page sends (packet `40/widget,{...}`)."""
    auths: list[dict[str, Any]] = []

    def on_frame(payload: str | bytes) -> None:
        if isinstance(payload, str) and payload.startswith("40/widget,"):
            auths.append(json.loads(payload[len("40/widget,") :]))

    page.on("websocket", lambda ws: ws.on("framesent", on_frame))
    return auths


async def stored(page: Page) -> dict[str, Any]:
    """Everything the widget keeps in this browser's localStorage."""
    raw: dict[str, str] = await page.evaluate(
        """prefix => Object.fromEntries(Object.keys(localStorage)
            .filter(k => k.startsWith(prefix)).map(k => [k, localStorage.getItem(k)]))""",
        PREFIX,
    )
    return {key: json.loads(value) for key, value in raw.items()}


async def test_c3_2_6_a_customer_downloads_and_then_deletes_their_data_in_the_widget(
    browser: Browser, service: Service, artifacts: Path
) -> None:
    context = await browser.new_context(
        locale="en-US", viewport={"width": 1280, "height": 800}, accept_downloads=True
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    connects = record_connects(page)
    await page.goto(service.url + "/demo")
    await page.get_by_test_id("launcher").click()
    panel = page.get_by_test_id("panel")
    await expect(page.get_by_test_id("status")).to_have_attribute("data-state", "online")

    # Feedback, given by clicking.
    await page.get_by_test_id("start").click()
    for value in ("yes", "no", "yes", "product_quality", "4"):
        await choose(page, value)
    words = "The zip broke <i>after</i> a week."
    await expect(page.locator('[data-testid="prompt"][data-step="text"]')).to_be_visible()
    await page.get_by_test_id("input").fill(words)
    await page.get_by_test_id("input").press("Enter")
    for value in ("done", "skip", "submit"):
        await choose(page, value)
    ack = page.locator('[data-testid="message"][data-author="bot"]', has_text="reference number")
    await expect(ack).to_be_visible()
    before = await stored(page)
    visitor = before[PREFIX + "visitor"]
    assert any(visitor in key for key in before)  # this visitor's conversation record
    repos = service.container.repos
    customer = await repos.customers.find(Channel.WIDGET, f"visitor:{visitor}")
    assert customer is not None

    # My data: a header button labelled from the catalogs, then "Download a copy".
    my_data = page.get_by_test_id("privacy")
    await expect(my_data).to_have_accessible_name("My data")
    await my_data.click()
    await choose(page, "export")
    link = page.get_by_test_id("download")
    await expect(link).to_have_text(re.compile(r"^Download feedback-data-\d{4}-\d{2}-\d{2}\.json$"))
    async with page.expect_download() as caught:
        await link.click()
    download = await caught.value
    assert re.fullmatch(r"feedback-data-\d{4}-\d{2}-\d{2}\.json", download.suggested_filename)
    saved = await download.path()
    document = json.loads(await asyncio.to_thread(saved.read_bytes))
    assert document["customer"]["channel_user_id"] == f"visitor:{visitor}"
    assert [t["text"] for t in document["tickets"]] == [words]
    await expect(panel.locator("i")).to_have_count(0)  # the words stay text everywhere
    await page.screenshot(path=str(artifacts / "widget-data-download.png"))

    # Delete, with the confirmation; the menu opened from the keyboard this time.
    await my_data.focus()
    await page.keyboard.press("Enter")
    await choose(page, "privacy_erase")
    await expect(panel).to_contain_text("This cannot be undone")
    await choose(page, "erase_yes")
    notice = page.get_by_test_id("note-erased")
    await expect(notice).to_have_text("Your data was deleted. This chat starts afresh.")
    await expect(ack).to_have_count(0)  # the old conversation is off the screen
    await expect(page.get_by_test_id("status")).to_have_attribute("data-state", "online")
    await expect(page.get_by_test_id("start")).to_be_visible()  # a fresh start is offered
    await page.screenshot(path=str(artifacts / "widget-data-erased.png"))

    after = await stored(page)
    assert after[PREFIX + "visitor"] != visitor  # a new random visitor id
    assert not any(visitor in key or visitor in json.dumps(v) for key, v in after.items())
    # The chat connected again as the new visitor, asking for everything (there is nothing).
    assert connects[0]["visitor"] == visitor
    assert connects[-1]["visitor"] == after[PREFIX + "visitor"]
    assert connects[-1]["last_seq"] == 0
    assert await repos.customers.find(Channel.WIDGET, f"visitor:{visitor}") is None

    await page.reload()
    await page.get_by_test_id("launcher").click()
    await expect(page.get_by_test_id("start")).to_be_visible()  # the server's state came
    await expect(page.get_by_test_id("message")).to_have_count(0)  # an empty chat
    await expect(page.get_by_test_id("note-erased")).to_have_count(0)
    await page.screenshot(path=str(artifacts / "widget-after-erase-reload.png"))
    assert (await stored(page))[PREFIX + "visitor"] == after[PREFIX + "visitor"]
    assert errors == []
    await context.close()


async def test_c3_2_6_an_erase_in_one_tab_clears_the_other_tabs_of_the_browser(
    browser: Browser, service: Service, artifacts: Path
) -> None:
    context = await browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    first, second = await context.new_page(), await context.new_page()
    for page in (first, second):
        await page.goto(service.url + "/demo")
        await page.get_by_test_id("launcher").click()
        await expect(page.get_by_test_id("status")).to_have_attribute("data-state", "online")
    visitor = (await stored(first))[PREFIX + "visitor"]
    assert (await stored(second))[PREFIX + "visitor"] == visitor  # one browser, one visitor

    await first.get_by_test_id("start").click()
    await choose(first, "yes")  # agreed to the privacy notice: now a customer is kept
    await expect(first.locator('[data-testid="prompt"][data-step="expanded_use"]')).to_be_visible()
    repos = service.container.repos
    assert await repos.customers.find(Channel.WIDGET, f"visitor:{visitor}") is not None
    await expect(second.locator('[data-testid="message"][data-step="notice"]')).to_be_visible()

    await first.get_by_test_id("privacy").click()
    await choose(first, "privacy_erase")
    await choose(first, "erase_yes")
    for page in (first, second):
        await expect(page.get_by_test_id("note-erased")).to_be_visible()
        await expect(page.locator('[data-step="notice"]')).to_have_count(0)
        await expect(page.get_by_test_id("start")).to_be_visible()
    await second.screenshot(path=str(artifacts / "widget-data-erased-other-tab.png"))
    renewed = (await stored(first))[PREFIX + "visitor"]
    assert renewed != visitor
    assert (await stored(second))[PREFIX + "visitor"] == renewed  # still one visitor
    assert await repos.customers.find(Channel.WIDGET, f"visitor:{visitor}") is None

    # The other tab goes on as the new visitor.
    await second.get_by_test_id("start").click()
    await choose(second, "yes")
    await expect(second.locator('[data-testid="prompt"][data-step="expanded_use"]')).to_be_visible()
    assert await repos.customers.find(Channel.WIDGET, f"visitor:{renewed}") is not None
    await context.close()
