"""The analytics page for supervisors and admins (C3.1.1, C3.2.4; issue 7).

- /console/analytics?from=YYYY-MM-DD&to=YYYY-MM-DD: tickets by category and by channel
  per day, the rating average and distribution, first responses on time within X working
  days, the adoption rate of suggestions, the backlog by age and the anonymous count of
  declined privacy notices. The default range is the last 30 days, today included.
- /console/analytics.csv with the same filter: the daily series and the figures.

Everything comes from the anonymized analytics store (AnalyticsService.report): the page
shows no personal data, so viewing it is not an audited event. The charts are SVG drawn
here, on the server: the console's Content-Security-Policy allows no script of ours but
the live one and no inline style, so shapes are placed with SVG presentation attributes
(x, y, width, height) and coloured by classes in console.css.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web
from babel.numbers import format_decimal, format_percent

from bot.console import strings as s
from bot.console.auth import require
from bot.console.pages import BASE, ConsolePages, View
from bot.domain.flow import CATEGORY_LABELS
from bot.domain.models import StaffRole
from bot.domain.text import N_, NP_
from bot.services.analytics import Report, Series
from bot.storage import DatabaseUnavailable

if TYPE_CHECKING:
    from bot.app import Container

log = logging.getLogger(__name__)

PAGE = f"{BASE}/analytics"
CSV_PATH = f"{BASE}/analytics.csv"
DEFAULT_DAYS = 30
MAX_DAYS = 366
DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Days the filter accepts: far enough either way for any real question, near enough that
# date arithmetic never leaves what `date` can hold.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")

# ---------------------------------------------------------------- strings

TITLE = N_("Analytics")
INTRO = N_(
    "Anonymized figures: no names, contact details or ticket numbers are kept for them. "
    "They count the tickets filed from {start} to {end}; the backlog is the tickets open today."
)
FROM = N_("From")
TO = N_("To")
SHOW = N_("Show")
LAST_30 = N_("Last 30 days")
DOWNLOAD = N_("Download CSV")
BAD_DATE = N_("Write the dates as YYYY-MM-DD, for example 2026-03-01.")
BAD_ORDER = N_("The start date is after the end date.")
TOO_LONG = N_("Choose a range of at most {days} days.")
OUT_OF_RANGE = N_("Choose dates from {first} to {last}.")
NO_DATA = N_("no data yet")
FILED = N_("Tickets filed")
AVERAGE = N_("Average rating")
AVERAGE_DETAIL = NP_("{average} of 5, from {count} rating", "{average} of 5, from {count} ratings")
ON_TIME = N_("First response within {days} working days")
ON_TIME_DETAIL = N_("{on_time} on time, {late} late")
ON_TIME_HINT = N_(
    "Tickets that still wait for their first response and are not due yet are not counted."
)
ON_TIME_LEGEND = N_("On time")
LATE_LEGEND = N_("Late")
ADOPTION = N_("Suggestions adopted")
ADOPTION_DETAIL = N_("{adopted} adopted, {declined} declined")
ADOPTED = N_("Adopted")
DECLINED = N_("Declined")
BACKLOG = N_("Open tickets by age")
BACKLOG_DETAIL = N_("{count} open today")
REFUSALS = N_("Declined privacy notices")
REFUSALS_HINT = N_(
    "People who did not accept the privacy notice: counted without any detail about them."
)
BY_CATEGORY = N_("Tickets per day by category")
BY_CHANNEL = N_("Tickets per day by channel")
RATINGS = N_("Ratings")
RATING_LABEL = N_("Rating {rating}")
NUMBERS = N_("Show the numbers")
DAY = N_("Day")
TOTAL = N_("Total")
VALUE = N_("Value")
BAR_TITLE = N_("{label}: {count}")
BUCKETS = {
    "0-2": N_("0 to 2 days"),
    "3-5": N_("3 to 5 days"),
    "6-10": N_("6 to 10 days"),
    "11-30": N_("11 to 30 days"),
    "31+": N_("More than 30 days"),
}
# The CSV's column headers and its summary figures.
CSV_SERIES = N_("Series")
CSV_KEY = N_("Key")
CSV_LABEL = N_("Label")
PERIOD_FROM = N_("First day")
PERIOD_TO = N_("Last day")
TODAY = N_("Today")
RATING_AVERAGE = N_("Average rating (1 to 5)")
ON_TIME_PERCENT = N_("First responses on time (%)")
WORKING_DAYS = N_("Working days allowed for the first response")
ADOPTION_PERCENT = N_("Suggestions adopted (%)")


class BadRange(ValueError):
    """The filter cannot be used; `msgid` says why, in the staff member's language."""

    def __init__(self, msgid: str) -> None:
        super().__init__(msgid)
        self.msgid = msgid

    def text(self, view: View) -> str:
        return view.t(
            self.msgid,
            days=MAX_DAYS,
            first=FIRST_DAY.isoformat(),
            last=LAST_DAY.isoformat(),
        )


def parse_range(raw_from: str, raw_to: str, today: date) -> tuple[date, date]:
    """The [from, to] days the staff member asked for; the last 30 days when not given."""

    def day(raw: str) -> date | None:
        raw = raw.strip()[:32]
        if not raw:
            return None
        if not DAY_RE.match(raw):
            raise BadRange(BAD_DATE)
        try:
            value = date.fromisoformat(raw)
        except ValueError:
            raise BadRange(BAD_DATE) from None
        if not FIRST_DAY <= value <= LAST_DAY:
            raise BadRange(OUT_OF_RANGE)
        return value

    start, end = day(raw_from), day(raw_to)
    if end is None:
        end = today if start is None or start <= today else start + timedelta(DEFAULT_DAYS - 1)
    if start is None:
        start = max(FIRST_DAY, end - timedelta(days=DEFAULT_DAYS - 1))
    if start > end:
        raise BadRange(BAD_ORDER)
    if (end - start).days + 1 > MAX_DAYS:
        raise BadRange(TOO_LONG)
    return start, end


def csv_cell(value: object) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula (OWASP's advice:
    a leading apostrophe for cells that start with a formula character)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


# ---------------------------------------------------------------- the charts


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True)
class Column:
    """One bar of a chart (a day, a rating, an age): its stacked parts and its label."""

    key: str
    label: str  # under the bar
    title: str  # the tooltip of the whole bar
    total: int
    label_x: float
    value_y: float  # where the total is written, above the bar
    rects: tuple[Rect, ...]


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    left: float
    right: float
    baseline: float
    ticks: tuple[Tick, ...]
    columns: tuple[Column, ...]
    show_values: bool
    label_every: int  # write every n-th column label (a year of days does not fit)


@dataclass(frozen=True)
class Legend:
    css: str
    label: str
    total: int


def _r(value: float) -> float:
    return round(value, 2)


def _ticks(top: int) -> tuple[int, ...]:
    if top <= 1:
        return (0, top)
    half = top // 2
    return (0, half, top) if half not in (0, top) else (0, top)


def bar_chart(
    columns: Sequence[tuple[str, str, str, Sequence[tuple[int, str, str]]]],
    *,
    width: int,
    height: int = 220,
    show_values: bool = True,
) -> BarChart:
    """Stacked columns from (key, label, title, [(count, css class, part title)]).

    Heights are scaled to the tallest column (at least 1, so an empty range draws a flat
    chart instead of dividing by zero).
    """
    left, right, top, bottom = 34.0, width - 6.0, 16.0, height - 26.0
    tallest = max((sum(c for c, _, _ in parts) for *_, parts in columns), default=0)
    scale_top = max(1, tallest)
    plot_h = bottom - top
    slot = (right - left) / max(1, len(columns))
    bar_w = max(1.0, slot * 0.72)
    built: list[Column] = []
    for index, (key, label, title, parts) in enumerate(columns):
        x = left + index * slot + (slot - bar_w) / 2
        y = bottom
        rects: list[Rect] = []
        for count, css, part_title in parts:
            if count <= 0:
                continue
            h = plot_h * count / scale_top
            y -= h
            rects.append(Rect(_r(x), _r(y), _r(bar_w), _r(h), css, part_title))
        total = sum(c for c, _, _ in parts)
        built.append(Column(key, label, title, total, _r(x + bar_w / 2), _r(y - 4), tuple(rects)))
    ticks = tuple(
        Tick(_r(bottom - plot_h * value / scale_top), str(value)) for value in _ticks(scale_top)
    )
    return BarChart(
        width=width,
        height=height,
        left=left,
        right=right,
        baseline=bottom,
        ticks=ticks,
        columns=tuple(built),
        show_values=show_values,
        label_every=max(1, math.ceil(len(columns) / 10)),
    )


@dataclass(frozen=True)
class Share:
    """A 100 % bar split in two (on time and late, adopted and declined)."""

    width: int
    rects: tuple[Rect, ...]


def share_bar(parts: Sequence[tuple[int, str, str]], width: int = 360) -> Share:
    whole = sum(count for count, _, _ in parts)
    rects: list[Rect] = []
    x = 0.0
    for count, css, title in parts:
        if count <= 0 or whole == 0:
            continue
        w = width * count / whole
        rects.append(Rect(_r(x), 0, _r(w), 24, css, title))
        x += w
    return Share(width, tuple(rects))


# ---------------------------------------------------------------- the page


class ConsoleAnalytics:
    def __init__(self, pages: ConsolePages) -> None:
        self.pages = pages
        self.analytics = pages.container.analytics

    def register(self, app: web.Application) -> None:
        app.router.add_get(PAGE, self.page)
        app.router.add_get(CSV_PATH, self.csv)

    def _chosen(self, request: web.Request) -> dict[str, str]:
        return {
            "from": request.query.get("from", "")[:32].strip(),
            "to": request.query.get("to", "")[:32].strip(),
        }

    async def page(self, request: web.Request) -> web.StreamResponse:
        require(request, StaffRole.SUPERVISOR)
        view = await self.pages.view(request)
        chosen = self._chosen(request)
        today = self.analytics.today()
        try:
            start, end = parse_range(chosen["from"], chosen["to"], today)
        except BadRange as problem:
            return self._render(view, chosen, None, error=problem.text(view))
        try:
            report = await self.analytics.report(start, end)
        except DatabaseUnavailable:
            return await self.pages.unavailable(request)
        chosen = {"from": start.isoformat(), "to": end.isoformat()}
        return self._render(view, chosen, report)

    def _render(
        self, view: View, chosen: dict[str, str], report: Report | None, *, error: str = ""
    ) -> web.Response:
        context: dict[str, Any] = {"figures": None}
        if report is not None:
            context["figures"] = self._figures(view, report)
        query = {k: v for k, v in chosen.items() if v}
        return self.pages.html(
            "analytics.html",
            view,
            status=400 if error else 200,
            title=view.t(TITLE),
            live="",
            a=Strings,
            chosen=chosen,
            error=error,
            csv_href=f"{CSV_PATH}?{urlencode(query)}" if report is not None else "",
            default_href=PAGE,
            **context,
        )

    # ------------------------------------------------------------ figures for the template

    def _number(self, view: View, value: float) -> str:
        return format_decimal(value, format="0.00", locale=view.locale)

    def _percent(self, view: View, value: float | None) -> str:
        if value is None:
            return view.t(NO_DATA)
        return format_percent(value / 100, format="0.0%", locale=view.locale)

    def _daily(
        self, view: View, report: Report, series: Sequence[Series], labels: dict[str, str]
    ) -> tuple[BarChart, list[Legend], list[dict[str, Any]]]:
        palette = {item.key: f"s{index}" for index, item in enumerate(series)}
        columns = []
        for i, day in enumerate(report.days):
            parts = [
                (
                    item.counts[i],
                    palette[item.key],
                    view.t(BAR_TITLE, label=labels[item.key], count=item.counts[i]),
                )
                for item in series
            ]
            total = sum(item.counts[i] for item in series)
            iso = day.isoformat()
            title = view.t(BAR_TITLE, label=iso, count=total)
            columns.append((iso, iso[5:], title, parts))
        chart = bar_chart(columns, width=760, show_values=len(report.days) <= 31)
        legend = [Legend(palette[item.key], labels[item.key], item.total) for item in series]
        rows = [
            {
                "day": day.isoformat(),
                "counts": [item.counts[i] for item in series],
                "total": sum(item.counts[i] for item in series),
            }
            for i, day in enumerate(report.days)
        ]
        return chart, legend, rows

    def _figures(self, view: View, report: Report) -> dict[str, Any]:
        category_labels = {c.value: view.t(label) for c, label in CATEGORY_LABELS.items()}
        channel_labels = {c.value: view.t(label) for c, label in s.CHANNELS.items()}
        by_category = self._daily(view, report, report.by_category, category_labels)
        by_channel = self._daily(view, report, report.by_channel, channel_labels)
        rating_columns = [
            (
                str(r),
                str(r),
                view.t(BAR_TITLE, label=view.t(RATING_LABEL, rating=r), count=n),
                [(n, f"r{r}", view.t(BAR_TITLE, label=view.t(RATING_LABEL, rating=r), count=n))],
            )
            for r, n in report.ratings.items()
        ]
        backlog_labels = {bucket.key: view.t(BUCKETS[bucket.key]) for bucket, _ in report.backlog}
        backlog_columns = [
            (
                bucket.key,
                bucket.key,
                view.t(BAR_TITLE, label=backlog_labels[bucket.key], count=n),
                [(n, "age", view.t(BAR_TITLE, label=backlog_labels[bucket.key], count=n))],
            )
            for bucket, n in report.backlog
        ]
        refusal_columns = [
            (
                day.isoformat(),
                day.isoformat()[5:],
                view.t(BAR_TITLE, label=day.isoformat(), count=n),
                [(n, "refused", view.t(BAR_TITLE, label=day.isoformat(), count=n))],
            )
            for day, n in zip(report.days, report.refusals, strict=True)
        ]
        on_time_label, late_label = view.t(ON_TIME_LEGEND), view.t(LATE_LEGEND)
        adopted_label, declined_label = view.t(ADOPTED), view.t(DECLINED)
        average = report.rating_average
        return {
            "intro": view.t(
                INTRO,
                start=view.pages.i18n.format_date(view.locale, report.start),
                end=view.pages.i18n.format_date(view.locale, report.end),
            ),
            "filed": report.filed,
            "average": self._number(view, average) if average is not None else view.t(NO_DATA),
            "average_detail": view.t(
                AVERAGE_DETAIL,
                average=self._number(view, average) if average is not None else "-",
                count=report.rated,
            ),
            "on_time_title": view.t(ON_TIME, days=report.first_response_days),
            "on_time": self._percent(view, report.on_time_percent),
            "on_time_detail": view.t(ON_TIME_DETAIL, on_time=report.on_time, late=report.late),
            "on_time_bar": share_bar(
                [
                    (report.on_time, "ontime", f"{on_time_label}: {report.on_time}"),
                    (report.late, "late", f"{late_label}: {report.late}"),
                ]
            ),
            "on_time_legend": [
                Legend("ontime", on_time_label, report.on_time),
                Legend("late", late_label, report.late),
            ],
            "adoption": self._percent(view, report.adoption_percent),
            "adoption_detail": view.t(
                ADOPTION_DETAIL, adopted=report.adopted, declined=report.declined
            ),
            "adoption_bar": share_bar(
                [
                    (report.adopted, "adopted", f"{adopted_label}: {report.adopted}"),
                    (report.declined, "declined", f"{declined_label}: {report.declined}"),
                ]
            ),
            "adoption_legend": [
                Legend("adopted", adopted_label, report.adopted),
                Legend("declined", declined_label, report.declined),
            ],
            "backlog_total": view.t(BACKLOG_DETAIL, count=report.backlog_total),
            "backlog_count": report.backlog_total,
            "refusals_total": report.refusals_total,
            "by_category": by_category,
            "category_names": [category_labels[item.key] for item in report.by_category],
            "by_channel": by_channel,
            "channel_names": [channel_labels[item.key] for item in report.by_channel],
            "ratings": bar_chart(rating_columns, width=360, height=180),
            "rating_rows": [(view.t(RATING_LABEL, rating=r), n) for r, n in report.ratings.items()],
            "backlog": bar_chart(backlog_columns, width=360, height=180),
            "backlog_rows": [(backlog_labels[b.key], n) for b, n in report.backlog],
            "refusals": bar_chart(
                refusal_columns, width=760, height=160, show_values=len(report.days) <= 31
            ),
        }

    # ------------------------------------------------------------ the CSV download

    async def csv(self, request: web.Request) -> web.StreamResponse:
        require(request, StaffRole.SUPERVISOR)
        view = await self.pages.view(request)
        chosen = self._chosen(request)
        try:
            start, end = parse_range(chosen["from"], chosen["to"], self.analytics.today())
        except BadRange as problem:
            raise web.HTTPBadRequest(text=problem.text(view)) from None
        try:
            report = await self.analytics.report(start, end)
        except DatabaseUnavailable:
            raise web.HTTPServiceUnavailable(text=view.t(s.UNAVAILABLE)) from None
        body = "\ufeff" + render_csv(csv_rows(view, report))  # the BOM: Excel reads UTF-8
        response = web.Response(text=body, content_type="text/csv", charset="utf-8")
        name = f"analytics-{start.isoformat()}-{end.isoformat()}.csv"
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class Strings:
    """This page's strings, as the template reaches them (`a.TITLE`)."""

    FROM = FROM
    TO = TO
    SHOW = SHOW
    LAST_30 = LAST_30
    DOWNLOAD = DOWNLOAD
    FILED = FILED
    AVERAGE = AVERAGE
    ON_TIME_HINT = ON_TIME_HINT
    ADOPTION = ADOPTION
    BACKLOG = BACKLOG
    REFUSALS = REFUSALS
    REFUSALS_HINT = REFUSALS_HINT
    BY_CATEGORY = BY_CATEGORY
    BY_CHANNEL = BY_CHANNEL
    RATINGS = RATINGS
    NUMBERS = NUMBERS
    DAY = DAY
    TOTAL = TOTAL


def _decimal(value: float | None, places: int) -> str:
    """A figure for the CSV; empty where there is nothing to divide by."""
    return "" if value is None else f"{value:.{places}f}"


def csv_rows(view: View, report: Report) -> list[list[object]]:
    """The CSV: a header, then one row per figure: (series, day, key, label, value).

    Keys are the stable machine names (category, channel, bucket); labels are in the
    staff member's language.
    """
    rows: list[list[object]] = [
        [view.t(CSV_SERIES), view.t(DAY), view.t(CSV_KEY), view.t(CSV_LABEL), view.t(VALUE)]
    ]
    rows.append(["period", "", "from", view.t(PERIOD_FROM), report.start.isoformat()])
    rows.append(["period", "", "to", view.t(PERIOD_TO), report.end.isoformat()])
    rows.append(["period", "", "today", view.t(TODAY), report.today.isoformat()])
    labels = {
        **{c.value: view.t(label) for c, label in CATEGORY_LABELS.items()},
        **{c.value: view.t(label) for c, label in s.CHANNELS.items()},
    }

    def daily(name: str, series: Iterable[Series]) -> None:
        for item in series:
            for day, count in zip(report.days, item.counts, strict=True):
                rows.append([name, day.isoformat(), item.key, labels[item.key], count])

    for day, count in zip(report.days, report.filed_per_day, strict=True):
        rows.append(["tickets_filed", day.isoformat(), "", view.t(FILED), count])
    daily("tickets_by_category", report.by_category)
    daily("tickets_by_channel", report.by_channel)
    for day, count in zip(report.days, report.refusals, strict=True):
        rows.append(["consent_refusals", day.isoformat(), "", view.t(REFUSALS), count])
    for rating, count in report.ratings.items():
        rows.append(["rating", "", str(rating), view.t(RATING_LABEL, rating=rating), count])
    average = report.rating_average
    rows.append(
        [
            "rating_average",
            "",
            "",
            view.t(RATING_AVERAGE),
            _decimal(average, 2),
        ]
    )
    on_time_percent = report.on_time_percent
    rows += [
        ["first_response", "", "working_days", view.t(WORKING_DAYS), report.first_response_days],
        ["first_response", "", "on_time", view.t(ON_TIME_LEGEND), report.on_time],
        ["first_response", "", "late", view.t(LATE_LEGEND), report.late],
        [
            "first_response",
            "",
            "on_time_percent",
            view.t(ON_TIME_PERCENT),
            _decimal(on_time_percent, 1),
        ],
    ]
    adoption = report.adoption_percent
    rows += [
        ["suggestions", "", "adopted", view.t(ADOPTED), report.adopted],
        ["suggestions", "", "declined", view.t(DECLINED), report.declined],
        [
            "suggestions",
            "",
            "adoption_percent",
            view.t(ADOPTION_PERCENT),
            _decimal(adoption, 1),
        ],
    ]
    for bucket, count in report.backlog:
        rows.append(["backlog", "", bucket.key, view.t(BUCKETS[bucket.key]), count])
    return rows


def render_csv(rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([csv_cell(cell) for cell in row])
    return out.getvalue()


def register_analytics(app: web.Application, container: Container) -> None:
    ConsoleAnalytics(ConsolePages(container)).register(app)


__all__ = ["ConsoleAnalytics", "csv_cell", "parse_range", "register_analytics"]
