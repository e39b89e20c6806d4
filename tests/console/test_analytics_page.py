"""The analytics page and its CSV over HTTP (C3.1.1, C3.2.4; issue 7)."""

from __future__ import annotations

import csv
import io
import re

import pytest

from bot.app import Container
from bot.console.analytics import csv_cell
from bot.domain.models import StaffRole
from tests.analytics_data import seed
from tests.console.support import Client, sign_in

BAR = re.compile(r'data-testid="bar" data-key="([^"]+)" data-total="(\d+)"')
CHART = re.compile(r'<svg class="chart" data-testid="chart-([a-z]+)"(.*?)</svg>', re.S)
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def charts(page: str) -> dict[str, list[tuple[str, int]]]:
    """Each chart's bars: (key, total)."""
    return {
        name: [(key, int(total)) for key, total in BAR.findall(body)]
        for name, body in CHART.findall(page)
    }


async def get(client: Client, path: str, status: int = 200) -> str:
    response = await client.get(path, allow_redirects=False)
    text = await response.text()
    assert response.status == status, text[:500]
    return text


async def csv_rows(client: Client, path: str) -> list[list[str]]:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/csv"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert re.search(r'filename="analytics-\d{4}-\d{2}-\d{2}-\d{4}-\d{2}-\d{2}\.csv"', disposition)
    body = (await response.read()).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(body)))


async def test_c3_1_4_an_agent_may_not_see_analytics(console: Client, container: Container) -> None:
    await sign_in(console, container.repos, role=StaffRole.AGENT)
    await get(console, "/console/analytics", 403)
    await get(console, "/console/analytics.csv", 403)
    queue = await get(console, "/console/queue")
    assert 'id="nav-analytics"' not in queue


async def test_signed_out_visitors_are_sent_to_sign_in(console: Client) -> None:
    response = await console.get("/console/analytics", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"].startswith("/console/login?next=")
    response = await console.get("/console/analytics.csv", allow_redirects=False)
    assert response.status == 302


async def test_c3_1_1_a_supervisor_sees_every_figure_and_chart(
    console: Client, container: Container
) -> None:
    await seed(container)
    await sign_in(console, container.repos, role=StaffRole.SUPERVISOR, username="sue")
    page = await get(console, "/console/analytics")
    assert 'id="nav-analytics"' in page
    assert 'value="2026-02-01"' in page  # the default: the last 30 days
    assert 'value="2026-03-02"' in page
    found = charts(page)
    assert set(found) == {"category", "channel", "ratings", "backlog", "refusals"}
    assert len(found["category"]) == 30  # one bar a day
    assert len(found["channel"]) == 30
    assert len(found["refusals"]) == 30
    daily = dict(found["category"])
    assert (daily["2026-02-25"], daily["2026-02-26"], daily["2026-02-28"]) == (2, 2, 1)
    assert sum(daily.values()) == 8
    assert found["ratings"] == [("1", 1), ("2", 1), ("3", 2), ("4", 2), ("5", 2)]
    assert found["backlog"] == [("0-2", 2), ("3-5", 0), ("6-10", 1), ("11-30", 0), ("31+", 1)]
    # The stacked parts of a day: t1 (Delivery and logistics) and t2 (Feature suggestion).
    day = page.split('data-key="2026-02-25"')[1].split("</g>")[0]
    assert day.count("<rect ") == 2
    text = re.sub(r"<[^>]+>", " ", page)
    assert re.search(r"Tickets filed\s+8", text)
    assert re.search(r"Average rating\s+3\.38", text)
    assert "3.38 of 5, from 8 ratings" in text
    assert "First response within 3 working days" in text
    assert re.search(r"60\.0%", text)
    assert "3 on time, 2 late" in text
    assert re.search(r"66\.7%", text)
    assert "2 adopted, 1 declined" in text
    assert "4 open today" in text
    assert "More than 30 days" in text
    # Nothing is styled inline: the CSP would block it.
    assert "style=" not in page
    assert "<script>" not in page


async def test_the_page_is_in_the_staff_members_language(
    console: Client, container: Container
) -> None:
    await seed(container)
    await sign_in(console, container.repos, role=StaffRole.ADMIN, username="lei", locale="zh_CN")
    page = await get(console, "/console/analytics?from=2026-02-25&to=2026-02-26")
    assert "数据分析" in page
    assert "3 个工作日内首次答复" in page
    assert len(charts(page)["category"]) == 2


async def test_c3_1_1_the_csv_has_the_daily_series_and_the_figures(
    console: Client, container: Container
) -> None:
    await seed(container)
    await sign_in(console, container.repos, role=StaffRole.SUPERVISOR, username="sue")
    rows = await csv_rows(console, "/console/analytics.csv")
    assert rows[0] == ["Series", "Day", "Key", "Label", "Value"]
    # header, 3 period rows, 30 days x (filed + 9 categories + 6 channels + refusals),
    # 5 ratings, the average, 4 first-response rows, 3 suggestion rows, 5 backlog rows.
    assert len(rows) == 1 + 3 + 30 * 17 + 5 + 1 + 4 + 3 + 5
    index = {(r[0], r[1], r[2]): r[4] for r in rows[1:]}
    assert index[("period", "", "from")] == "2026-02-01"
    assert index[("period", "", "to")] == "2026-03-02"
    assert index[("tickets_filed", "2026-02-25", "")] == "2"
    assert index[("tickets_by_category", "2026-02-25", "logistics")] == "1"
    assert index[("tickets_by_category", "2026-02-28", "feature_suggestion")] == "1"
    assert index[("tickets_by_channel", "2026-02-26", "phone")] == "1"
    assert index[("consent_refusals", "2026-03-01", "")] == "2"
    assert [index[("rating", "", str(r))] for r in range(1, 6)] == ["1", "1", "2", "2", "2"]
    assert index[("rating_average", "", "")] == "3.38"
    assert index[("first_response", "", "working_days")] == "3"
    assert index[("first_response", "", "on_time")] == "3"
    assert index[("first_response", "", "late")] == "2"
    assert index[("first_response", "", "on_time_percent")] == "60.0"
    assert index[("suggestions", "", "adoption_percent")] == "66.7"
    assert index[("backlog", "", "31+")] == "1"
    labels = {r[2]: r[3] for r in rows if r[0] == "tickets_by_category"}
    assert labels["logistics"] == "Delivery and logistics"


async def test_the_csv_cannot_inject_formulas(console: Client, container: Container) -> None:
    await seed(container)
    # A document written past the service (a restored backup, a hand edit): its values are
    # not known keys, so they are never copied, let alone as formulas.
    await container.repos.analytics.collection.insert_one(
        {
            "_id": "rogue",
            "day": "2026-03-01",
            "channel": '=HYPERLINK("http://e.vil","x")',
            "category": "@SUM(1+1)*cmd|' /C calc'!A0",
            "locale": "+1",
            "rating": 5,
            "open": True,
        }
    )
    await sign_in(console, container.repos, role=StaffRole.SUPERVISOR, username="sue")
    rows = await csv_rows(console, "/console/analytics.csv")
    cells = [cell for row in rows for cell in row]
    assert not [cell for cell in cells if cell.startswith(FORMULA)]
    assert "HYPERLINK" not in repr(cells)
    page = await get(console, "/console/analytics")
    assert "HYPERLINK" not in page


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+2", "'=1+2"),
        ("+cmd", "'+cmd"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("\uff1d1+2", "'\uff1d1+2"),
        ("2026-03-01", "2026-03-01"),
        ("Delivery and logistics", "Delivery and logistics"),
        (3, "3"),
        (None, ""),
    ],
)
def test_csv_cells_never_start_a_formula(value: object, expected: str) -> None:
    assert csv_cell(value) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2026-13-45", "Write the dates as YYYY-MM-DD"),
        ("from=yesterday", "Write the dates as YYYY-MM-DD"),
        ("to=2026-3-1", "Write the dates as YYYY-MM-DD"),
        ("from=%3Cscript%3Ealert(1)%3C/script%3E", "Write the dates as YYYY-MM-DD"),
        ("from=2026-03-02&to=2026-02-01", "The start date is after the end date."),
        ("from=2024-01-01&to=2026-03-01", "Choose a range of at most 366 days."),
        ("from=" + "9" * 5000, "Write the dates as YYYY-MM-DD"),
        ("to=0001-01-05", "Choose dates from 2000-01-01 to 2099-12-31."),
        ("from=9999-12-31", "Choose dates from 2000-01-01 to 2099-12-31."),
    ],
)
async def test_bad_filter_values_get_a_clear_error(
    console: Client, container: Container, query: str, message: str
) -> None:
    await sign_in(console, container.repos, role=StaffRole.SUPERVISOR, username="sue")
    page = await get(console, f"/console/analytics?{query}", 400)
    assert message in page
    assert 'data-testid="analytics-error"' in page
    assert "<script>alert" not in page  # echoed back escaped, if at all
    assert 'data-testid="chart-' not in page
    response = await console.get(f"/console/analytics.csv?{query}")
    assert response.status == 400
    assert message in await response.text()


async def test_one_end_of_the_range_is_enough(console: Client, container: Container) -> None:
    await seed(container)
    await sign_in(console, container.repos, role=StaffRole.SUPERVISOR, username="sue")
    page = await get(console, "/console/analytics?from=2026-02-25")
    assert len(charts(page)["category"]) == 6  # 02-25 to today, 03-02
    page = await get(console, "/console/analytics?to=2026-02-26")
    assert len(charts(page)["category"]) == 30
    assert 'value="2026-01-28"' in page
