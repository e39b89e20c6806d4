"""The staff console as staff use it, in real Chromium, against the real service."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from playwright.async_api import Browser, BrowserContext, Page, expect

from bot.config import Settings
from bot.domain.models import Channel, ConsentPurpose, PrivacyRequestKind, StaffRole, utcnow
from tests.channels.service import Service, serving
from tests.channels.telegram import TelegramCustomer, running, telegram_settings
from tests.channels.widget import WidgetVisitor
from tests.console.support import PASSWORD, add_staff
from tests.fake_telegram import FakeTelegram

HOSTILE = "<script>alert('x')</script><b>The checkout button</b> does nothing."


async def signed_in(
    browser: Browser, service: Service, username: str
) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(service.url + "/console")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in")
    await expect(page.locator("#results")).to_be_visible()
    await expect(page.locator("body")).to_have_attribute("data-live-state", "online")
    return context, page


async def test_c3_1_4_an_agent_sees_a_new_ticket_live_and_the_reply_reaches_the_widget(
    browser: Browser, settings: Settings, artifacts: Path
) -> None:
    async with serving(settings) as service:
        await add_staff(service.container.repos, username="mei", locale="en")
        staff_context, console = await signed_in(browser, service, "mei")

        visitor = WidgetVisitor(service.url)
        await visitor.connect()
        acknowledgement = await visitor.give_feedback(HOSTILE)
        reference = acknowledgement["text"].split("reference number is ")[1].split(".")[0]
        row = console.locator(f'[data-testid="ticket-row"][data-reference="{reference}"]')
        await expect(row).to_be_visible()  # live: no reload
        await console.screenshot(path=str(artifacts / "console-queue-en.png"))

        # The customer's page, with the same visitor id as the socket that filed the ticket.
        customer_context = await browser.new_context()
        stored = json.dumps(visitor.visitor)
        await customer_context.add_init_script(
            f"localStorage.setItem('feedback-widget:visitor', {json.dumps(stored)});"
        )
        shop = await customer_context.new_page()
        await shop.goto(service.url + "/demo")
        await shop.get_by_test_id("launcher").click()
        await expect(shop.get_by_test_id("panel")).to_contain_text(reference)
        await visitor.disconnect()

        await row.locator("a").first.click()
        text = console.get_by_test_id("ticket-text")
        await expect(text).to_have_text(HOSTILE)  # shown inert, as typed
        await expect(console.locator("main b")).to_have_count(0)
        await console.fill("#reply-text", "Thanks! We are fixing the checkout button today.")
        await console.click("#reply-send")
        reply = shop.locator('[data-testid="message"][data-author="staff"]')
        await expect(reply).to_contain_text("fixing the checkout button")  # live, in the widget
        await expect(console.locator("#timeline")).to_contain_text("fixing the checkout button")
        await console.screenshot(path=str(artifacts / "console-ticket-en.png"), full_page=True)
        await customer_context.close()
        await staff_context.close()


async def test_an_overdue_ticket_is_flagged_in_chinese(
    browser: Browser, settings: Settings, artifacts: Path
) -> None:
    async with serving(settings) as service:
        repos = service.container.repos
        await add_staff(repos, username="lei", locale="zh_CN", role=StaffRole.SUPERVISOR)
        visitor = WidgetVisitor(service.url, locale="zh-CN")
        await visitor.connect()
        await visitor.give_feedback("结账按钮点了没有反应。")
        await visitor.disconnect()
        customer = await repos.customers.find(Channel.WIDGET, f"visitor:{visitor.visitor}")
        assert customer is not None
        ticket = await repos.tickets.latest_open(customer.id)
        assert ticket is not None
        await repos.tickets.collection.update_one(
            {"_id": ticket.id}, {"$set": {"response_due": utcnow() - timedelta(days=2)}}
        )

        context, console = await signed_in(browser, service, "lei")
        row = console.locator(f'[data-testid="ticket-row"][data-reference="{ticket.reference}"]')
        await expect(row).to_have_attribute("data-sla", "overdue")
        await expect(console.locator("html")).to_have_attribute("lang", "zh-CN")
        await console.screenshot(path=str(artifacts / "console-queue-zh.png"))
        await row.locator("a").first.click()
        await expect(console.get_by_test_id("sla")).to_be_visible()
        await console.screenshot(path=str(artifacts / "console-ticket-zh.png"), full_page=True)
        await context.close()


async def test_c3_1_5_adopted_reaches_a_telegram_customer(
    browser: Browser, settings: Settings
) -> None:
    fake = FakeTelegram()
    async with fake, running(telegram_settings(settings, fake), fake) as service:
        await add_staff(service.container.repos, username="ann", locale="en")
        customer = TelegramCustomer(fake, service, 6001)
        ticket = await customer.give_feedback("Please add a dark mode to the app.")

        context, console = await signed_in(browser, service, "ann")
        await console.goto(f"{service.url}/console/tickets/{ticket.id}")
        await console.select_option("#status-select", "adopted")
        await console.fill("#status-message", "Dark mode ships in version 5.2.")
        await console.click("#status-apply")
        await expect(console.get_by_test_id("status")).to_have_attribute("data-status", "adopted")
        await fake.wait_for(
            lambda c: (
                c.method == "sendMessage"
                and c.chat_id == customer.user_id
                and "5.2" in c.params.get("text", "")
            )
        )
        (told,) = [t for t in fake.sent_texts(customer.user_id) if "5.2" in t]
        assert ticket.reference in told
        assert "adopted" in told
        await context.close()


async def test_c3_2_6_a_supervisor_corrects_and_withdraws_for_a_customer_who_phoned(
    browser: Browser, settings: Settings, artifacts: Path
) -> None:
    async with serving(settings) as service:
        container = service.container
        await add_staff(container.repos, username="sue", locale="en", role=StaffRole.SUPERVISOR)
        visitor = WidgetVisitor(service.url)
        await visitor.connect()
        await visitor.give_feedback("The delivery slot was missed.")
        await visitor.disconnect()
        customer = await container.repos.customers.find(
            Channel.WIDGET, f"visitor:{visitor.visitor}"
        )
        assert customer is not None
        correct, withdraw = [
            await container.privacy.log_request(customer, kind, channel=Channel.PHONE, by="someone")
            for kind in (PrivacyRequestKind.CORRECT, PrivacyRequestKind.WITHDRAW)
        ]

        context, console = await signed_in(browser, service, "sue")
        await console.goto(f"{service.url}/console/privacy/{correct.id}")
        # An address the dialogue accepts, which a type=email field would have refused.
        await console.fill("#privacy-email", "王芳@example.com")
        await console.fill("#privacy-phone", "+86 136 0000 4444")
        await console.click("#privacy-contact")
        await expect(console.get_by_test_id("flash")).to_contain_text("The correction is made")
        await expect(console.get_by_test_id("privacy-state")).to_have_attribute(
            "data-state", "done"
        )
        stored = await container.repos.customers.get(customer.id)
        assert stored is not None
        assert (stored.email, stored.phone) == ("王芳@example.com", "+8613600004444")

        await console.goto(f"{service.url}/console/privacy/{withdraw.id}")
        await console.locator(
            '[data-testid="privacy-withdraw"][data-purpose="expanded_use"]'
        ).click()
        await expect(console.get_by_test_id("flash")).to_contain_text("The consent is withdrawn")
        await console.screenshot(path=str(artifacts / "console-privacy-withdrawn-en.png"))
        consents = await container.repos.consents.current(customer.id)
        assert not consents[ConsentPurpose.EXPANDED_USE].granted
        await context.close()
