"""The analytics page as a supervisor uses it, in real Chromium, against the real service."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

from playwright.async_api import Browser, expect

from bot.config import Settings
from bot.domain.models import Category, Channel, StaffRole, TicketStatus, utcnow
from tests.analytics_data import make_ticket, store
from tests.channels.service import serving
from tests.console.support import PASSWORD, add_staff


async def test_c3_1_1_a_supervisor_reads_the_charts_and_downloads_the_csv(
    browser: Browser, settings: Settings, artifacts: Path
) -> None:
    async with serving(settings) as service:
        container = service.container
        now = utcnow()
        today = container.analytics.today()
        tickets = {
            f"t{n}": make_ticket(
                created=now - timedelta(days=days),
                channel=channel,
                category=category,
                rating=rating,
                due=now - timedelta(days=days) + timedelta(days=4),
                first_response=now - timedelta(days=days) + timedelta(days=1) if answered else None,
                changes=[(now - timedelta(days=days) + timedelta(days=1), TicketStatus.ADOPTED)]
                if answered
                else [],
            )
            for n, (days, channel, category, rating, answered) in enumerate(
                [
                    (1, Channel.TELEGRAM, Category.LOGISTICS, 2, False),
                    (2, Channel.WIDGET, Category.FEATURE_SUGGESTION, 5, True),
                    (2, Channel.FORM, Category.PRICE, 4, False),
                    (12, Channel.TELEGRAM, Category.OTHER, 3, True),
                    (45, Channel.WIDGET, Category.PRICE, 1, False),
                ]
            )
        }
        await store(container, tickets)
        await add_staff(container.repos, username="sue", role=StaffRole.SUPERVISOR)

        context = await browser.new_context(
            viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
        page = await context.new_page()
        await page.goto(service.url + "/console/analytics")
        await page.fill("#username", "sue")
        await page.fill("#password", PASSWORD)
        await page.click("#sign-in")
        await expect(page.locator("#analytics-filter")).to_be_visible()
        await expect(page.locator("#nav-analytics")).to_be_visible()

        category = page.get_by_test_id("chart-category")
        await expect(category).to_be_visible()
        await expect(category.get_by_test_id("bar")).to_have_count(30)
        await expect(page.get_by_test_id("chart-channel").get_by_test_id("bar")).to_have_count(30)
        await expect(page.get_by_test_id("chart-ratings").get_by_test_id("bar")).to_have_count(5)
        await expect(page.get_by_test_id("chart-backlog").get_by_test_id("bar")).to_have_count(5)
        # Bars are drawn: a filled rectangle with a height, coloured by the stylesheet.
        two_days_ago = (today - timedelta(days=2)).isoformat()
        bar = category.locator(f'[data-key="{two_days_ago}"]')
        await expect(bar).to_have_attribute("data-total", "2")
        await expect(bar.locator("rect")).to_have_count(2)
        box = await bar.locator("rect").first.bounding_box()
        assert box is not None
        assert box["height"] > 0
        fill = await bar.locator("rect").first.evaluate("el => getComputedStyle(el).fill")
        assert fill not in ("", "none", "rgb(0, 0, 0)")
        await expect(page.get_by_test_id("kpi-filed")).to_contain_text("4")
        await expect(
            page.get_by_test_id("share-adoption").get_by_test_id("share-part")
        ).to_have_count(1)
        await page.screenshot(path=str(artifacts / "console-analytics-en.png"), full_page=True)

        # A week instead of the default month.
        week_start = (today - timedelta(days=6)).isoformat()
        await page.fill("#analytics-from", week_start)
        await page.fill("#analytics-to", today.isoformat())
        await page.click("#analytics-show")
        await expect(category.get_by_test_id("bar")).to_have_count(7)
        await expect(page.locator("#analytics-from")).to_have_value(week_start)
        await expect(page.get_by_test_id("kpi-filed")).to_contain_text("3")

        async with page.expect_download() as info:
            await page.click("#analytics-csv")
        download = await info.value
        assert download.suggested_filename == f"analytics-{week_start}-{today.isoformat()}.csv"
        saved = await download.path()
        rows = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
        assert rows[0] == ["Series", "Day", "Key", "Label", "Value"]
        filed = {r[1]: r[4] for r in rows if r[0] == "tickets_filed"}
        assert len(filed) == 7
        assert filed[two_days_ago] == "2"
        await context.close()
