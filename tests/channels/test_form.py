"""The online form (C2.2 (1)) and the channels page (C2.3) over HTTP, against the real database:
the service's own aiohttp app with the form's routes, driven by aiohttp's test client."""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.app import Container, build_app
from bot.channels.form import FORM_PAGES
from bot.config import Settings
from bot.domain import flow
from bot.domain.models import Channel, ConsentPurpose, Ticket, TicketStatus
from bot.domain.privacy import NOTICE_VERSION, text_hash
from bot.domain.text import Text
from bot.storage.embedded import free_port
from tests.support import FixedClock, close_abandoned_sockets

Client = TestClient[web.Request, web.Application]

SECRET = b"form-test-secret-0123456789"
BASE = "https://feedback.example.com"
BOT_USERNAME = "feedback_test_bot"
REFERENCE = re.compile(r"FB-\d{4}-\d{6}")
FORM_ID = re.compile(r'name="form_id" value="([0-9a-f]{32})"')
TEXT = "The parcel arrived two days late."
COLLECTIONS = ("customers", "consents", "tickets", "messages", "conversations")


def form_app(
    container: Container, *, username: str | None = None, public_url: str | None = None
) -> web.Application:
    """The service's app, with the form's settings for this test."""
    container.settings = container.settings.model_copy(
        update={
            "form_link_secret": SecretStr(SECRET.decode()),
            "telegram_bot_username": username,
            "public_url": public_url,
        }
    )
    return build_app(container)


@pytest.fixture
async def client(container: Container) -> AsyncIterator[Client]:
    app = form_app(container, username=BOT_USERNAME, public_url=BASE)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def open_form(client: Client, lang: str = "en") -> str:
    response = await client.get("/feedback", params={"lang": lang})
    assert response.status == 200
    found = FORM_ID.search(await response.text())
    assert found is not None
    return found.group(1)


def answers(form_id: str, **overrides: str | None) -> dict[str, str]:
    fields: dict[str, str | None] = {
        "form_id": form_id,
        "lang": "en",
        "notice_version": NOTICE_VERSION,
        "consent_processing": "yes",
        "consent_licence": "yes",
        "category": "logistics",
        "rating": "2",
        "text": TEXT,
        "text_own_work": "yes",
        "contact": "ann@example.com",
        "action": "send",
        **overrides,
    }
    return {name: value for name, value in fields.items() if value is not None}


async def post(client: Client, data: Any, **kwargs: Any) -> tuple[int, str, str]:
    """POST the form to its action, without following the redirect: (status, Location, body)."""
    action = "/feedback?lang=en"
    response = await client.post(action, data=data, allow_redirects=False, **kwargs)
    return response.status, response.headers.get("Location", ""), await response.text()


async def raw_post(client: Client, body: bytes | AsyncIterator[bytes]) -> tuple[int, str, str]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return await post(client, body, headers=headers)


async def counts(container: Container) -> dict[str, int]:
    db = container.database.db
    return {name: await db[name].count_documents({}) for name in COLLECTIONS}


async def nothing_stored(container: Container) -> None:
    assert await counts(container) == dict.fromkeys(COLLECTIONS, 0)
    assert await container.repos.refusals.collection.count_documents({}) == 0


def rendered(container: Container, locale: str, step_id: str) -> str:
    step = flow.STEPS[step_id]
    return container.i18n.render(
        locale, Text(step.prompt, step.params({}, container.dialogue.config))
    )


async def filed(container: Container, location: str) -> Ticket:
    """The ticket a confirmation address names."""
    reference = parse_qs(urlsplit(location).query)["ref"][0]
    ticket = await container.repos.tickets.by_reference(reference)
    assert ticket is not None
    return ticket


def input_tag(page: str, element_id: str) -> str:
    found = re.search(rf'<input[^>]*id="{element_id}"[^>]*>', page)
    assert found is not None, f"no input #{element_id}"
    return found.group()


def error_of(page: str, field: str) -> str:
    found = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', page)
    assert found is not None, f"no error shown for {field}"
    return html.unescape(found.group(1))


# ---------------------------------------------------------------- the page


async def test_c2_2_the_form_has_every_step_of_the_dialogue_on_one_page(
    client: Client, container: Container
) -> None:
    response = await client.get("/feedback", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    page = await response.text()
    assert '<html lang="en">' in page
    assert "<script" not in page  # works without JavaScript, loads nothing from elsewhere
    assert "src=" not in page
    assert 'href="http' not in page
    # C6.2: the dialogue's own notice, with its version, before anything is asked
    assert html.escape(rendered(container, "en", "notice"), quote=False) in page
    assert f"version {NOTICE_VERSION}" in page
    assert page.index("consent_processing") < page.index('name="category"')
    # every consent is a checkbox that starts unticked (C3.1.7 optional, C3.2.3 required)
    for name in ("consent_processing", "consent_expanded_use", "consent_licence"):
        tag = re.search(rf'<input type="checkbox" id="{name}" name="{name}"[^>]*>', page)
        assert tag is not None
        assert "checked" not in tag.group()
        assert f'<label for="{name}">' in page
    assert "required" in input_tag(page, "consent_licence")
    assert "required" not in input_tag(page, "consent_expanded_use")
    for category in flow.CATEGORY_LABELS:
        assert f'id="category-{category.value}" name="category" value="{category.value}"' in page
    for rating in range(1, 6):
        assert f'id="rating-{rating}" name="rating" value="{rating}"' in page
    assert '<textarea id="text" name="text"' in page
    assert "(5 to 4000 characters)" in page
    assert 'id="text_own_work" name="text_own_work"' in page  # C5.2
    assert 'id="contact" name="contact"' in page  # C6.1: optional, and it says so
    assert re.search(r'<label for="contact">[^<]*<span class="tag">\(optional\)', page)
    assert 'id="submit"' in page
    assert 'id="decline"' in page
    assert 'href="/feedback?lang=zh_CN"' in page  # the language switch
    assert '<form method="post" action="/feedback?lang=en"' in page


async def test_c6_2_the_form_speaks_chinese_with_the_same_notice(
    client: Client, container: Container
) -> None:
    response = await client.get("/feedback", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    page = await response.text()
    assert '<html lang="zh-CN">' in page
    assert "隐私告知" in page
    assert html.escape(rendered(container, "zh_CN", "notice"), quote=False) in page
    assert "产品质量" in page
    assert 'href="/feedback?lang=en"' in page
    # ?lang= wins over the browser's language
    english = await client.get(
        "/feedback", params={"lang": "en"}, headers={"Accept-Language": "zh-CN"}
    )
    assert '<html lang="en">' in await english.text()


async def test_every_form_gets_its_own_form_id(client: Client) -> None:
    assert await open_form(client) != await open_form(client)


# ---------------------------------------------------------------- sending it


async def test_c2_2_a_sent_form_files_an_acknowledged_ticket(
    client: Client, container: Container
) -> None:
    form_id = await open_form(client)
    status, location, _ = await post(client, answers(form_id))
    assert status == 303
    assert location.startswith("/feedback/done?")

    reference = parse_qs(urlsplit(location).query)["ref"][0]
    ticket = await container.repos.tickets.by_reference(reference)
    assert ticket is not None
    assert ticket.channel is Channel.FORM
    assert ticket.category.value == "logistics"
    assert ticket.rating == 2
    assert ticket.text == TEXT
    assert ticket.text_own_work is True  # C5.2
    assert ticket.expanded_use is False  # C3.1.7: unticked means declined
    assert ticket.locale == "en"
    assert ticket.status is TicketStatus.ACKNOWLEDGED

    customer = await container.repos.customers.get(ticket.customer_id)
    assert customer is not None
    assert customer.channel is Channel.FORM
    assert customer.email == "ann@example.com"
    assert re.fullmatch(r"[0-9a-f]{32}", customer.external_id)  # anonymous and random

    # C3.1.3: the acknowledgement is stored like every other channel's
    (ack,) = await container.repos.messages.for_ticket(ticket.id)
    assert ack.kind == "ack"
    assert reference in ack.text
    assert "March 5, 2026" in ack.text


async def test_c6_2_consents_are_recorded_like_the_dialogue_records_them(
    client: Client, container: Container, clock: FixedClock
) -> None:
    form_id = await open_form(client)
    await post(client, answers(form_id))
    (customer,) = [c async for c in container.repos.customers.collection.find()]
    ledger = await container.repos.consents.history(customer["_id"])
    assert [(r.purpose, r.granted) for r in ledger] == [
        (ConsentPurpose.PROCESSING, True),
        (ConsentPurpose.EXPANDED_USE, False),
        (ConsentPurpose.LICENCE, True),
    ]
    assert {r.notice_version for r in ledger} == {NOTICE_VERSION}
    assert {r.locale for r in ledger} == {"en"}
    assert {r.channel for r in ledger} == {Channel.FORM}
    assert {r.at for r in ledger} == {clock()}
    for record, step in zip(ledger, ("notice", "expanded_use", "licence"), strict=True):
        assert record.text_hash == text_hash(rendered(container, "en", step))


async def test_c3_1_7_ticking_expanded_use_grants_it(client: Client, container: Container) -> None:
    form_id = await open_form(client)
    _, location, _ = await post(client, answers(form_id, consent_expanded_use="yes"))
    ticket = await filed(container, location)
    assert ticket.expanded_use is True
    current = await container.repos.consents.current(ticket.customer_id)
    assert current[ConsentPurpose.EXPANDED_USE].granted is True


async def test_c3_1_3_the_confirmation_shows_the_reference_and_the_due_date(
    client: Client,
) -> None:
    form_id = await open_form(client)
    _, location, _ = await post(client, answers(form_id, text="<b>Late</b> parcel again"))
    response = await client.get(location)
    assert response.status == 200
    assert response.headers["Referrer-Policy"] == "no-referrer"
    page = await response.text()
    reference = parse_qs(urlsplit(location).query)["ref"][0]
    assert reference in page
    # Filed Mon 2 Mar 2026 10:00 Shanghai; 3 working days later is Thu 5 Mar.
    assert "by March 5, 2026 (3 working days)" in page
    assert "quote it whenever you contact us" in page  # how to follow up
    # nothing personal on a page whose address may be shared
    assert "example.com" not in page.replace(BASE, "")
    assert "Late" not in page

    chinese = await client.get(location.replace("lang=en", "lang=zh_CN"))
    assert "2026年3月5日" in await chinese.text()


async def test_c3_1_3_the_confirmation_needs_its_key(client: Client) -> None:
    form_id = await open_form(client)
    _, location, _ = await post(client, answers(form_id))
    query = parse_qs(urlsplit(location).query)
    reference, key = query["ref"][0], query["k"][0]
    other = REFERENCE.sub(lambda m: m.group()[:-1] + "9", reference)
    for params in (
        {"ref": reference, "k": key[:-1] + ("0" if key[-1] != "0" else "1")},
        {"ref": reference, "k": ""},
        {"ref": reference},
        {"ref": other, "k": key},
        {"ref": "$where", "k": key},
        {"ref": reference, "k": key.upper()},
    ):
        response = await client.get("/feedback/done", params={**params, "lang": "en"})
        assert response.status == 404
        page = await response.text()
        assert reference not in page
        assert "not valid" in page
    assert (await client.get("/feedback/done", params={"ref": reference, "k": key})).status == 200


# ---------------------------------------------------------------- validation


async def test_invalid_answers_are_explained_next_to_the_fields_and_kept(
    client: Client, container: Container
) -> None:
    form_id = await open_form(client)
    status, _, page = await post(
        client,
        answers(
            form_id,
            category=None,
            rating="9",
            text="meh",
            contact="not a phone",
            consent_expanded_use="yes",
        ),
    )
    assert status == 400
    assert page.startswith("<!doctype html>")
    assert "<title>Error: " in page
    assert error_of(page, "category") == "Please choose what your feedback is about."
    assert error_of(page, "rating") == "Please choose a rating from 1 to 5."
    assert error_of(page, "text") == "That is too short: please write at least 5 characters."
    assert error_of(page, "contact").startswith("That does not look like an e-mail address")
    assert 'aria-describedby="text-hint text-error" aria-invalid="true"' in page
    assert 'id="rating" aria-describedby="rating-error"' in page
    assert 'href="#category-product_quality"' in page  # the summary links to each field
    # what was entered is still there, the same form id too
    assert f'name="form_id" value="{form_id}"' in page
    assert ">\nmeh</textarea>" in page
    assert 'value="not a phone"' in page
    assert re.search(r'id="consent_expanded_use"[^>]*checked', page)
    assert re.search(r'id="consent_processing"[^>]*checked', page)
    await nothing_stored(container)

    too_long = "x" * 4001
    _, _, page = await post(client, answers(form_id, text=too_long))
    assert error_of(page, "text") == (
        "That is too long: please keep it to 4000 characters (this one has 4001)."
    )
    await nothing_stored(container)


async def test_c3_2_3_the_licence_must_be_accepted_when_required(
    client: Client, container: Container
) -> None:
    form_id = await open_form(client)
    status, _, page = await post(client, answers(form_id, consent_licence=None))
    assert status == 400
    assert "accept feedback under this licence" in error_of(page, "consent_licence")
    await nothing_stored(container)


async def test_c3_2_3_an_optional_licence_may_be_left_unticked(container: Container) -> None:
    container.dialogue.config = replace(container.dialogue.config, licence_required=False)
    app = form_app(container)
    async with TestClient(TestServer(app)) as client:
        page = await (await client.get("/feedback", params={"lang": "en"})).text()
        assert "required" not in input_tag(page, "consent_licence")
        found = FORM_ID.search(page)
        assert found is not None
        form_id = found.group(1)
        status, _, _ = await post(client, answers(form_id, consent_licence=None))
        assert status == 303
        (customer,) = [c async for c in container.repos.customers.collection.find()]
        current = await container.repos.consents.current(customer["_id"])
        assert current[ConsentPurpose.LICENCE].granted is False


async def test_c6_2_an_unticked_notice_is_a_question_not_a_refusal(
    client: Client, container: Container
) -> None:
    form_id = await open_form(client)
    status, _, page = await post(client, answers(form_id, consent_processing=None))
    assert status == 400
    assert "agree to the privacy notice" in error_of(page, "consent_processing")
    await nothing_stored(container)


async def test_c6_2_declining_the_notice_keeps_nothing_but_a_count(
    client: Client, container: Container, clock: FixedClock
) -> None:
    form_id = await open_form(client)
    status, location, _ = await post(client, answers(form_id, action="decline"))
    assert status == 303
    assert location == "/feedback/declined?lang=en"
    page = await (await client.get(location)).text()
    assert "we have kept nothing about you" in page
    assert await counts(container) == dict.fromkeys(COLLECTIONS, 0)
    repos = container.repos
    assert await repos.refusals.count(container.tickets.calendar.local_date(clock())) == 1
    refusal = await repos.refusals.collection.find_one({})
    assert refusal is not None
    assert set(refusal) == {"_id", "day", "channel"}
    assert refusal["channel"] == "form"


async def test_a_changed_notice_is_shown_again_before_consent_is_recorded(
    client: Client, container: Container
) -> None:
    form_id = await open_form(client)
    status, _, page = await post(client, answers(form_id, notice_version="2020-01-01"))
    assert status == 400
    assert "privacy notice has changed" in page
    assert not re.search(r'id="consent_processing"[^>]*checked', page)
    assert ">\nThe parcel arrived two days late.</textarea>" in page
    await nothing_stored(container)


# ---------------------------------------------------------------- sending twice


async def test_c3_2_2_sending_the_same_form_again_files_one_ticket(
    client: Client, container: Container
) -> None:
    form_id = await open_form(client)
    first = await post(client, answers(form_id))
    again = await post(client, answers(form_id, text="Changed my mind about the words."))
    at_once = await asyncio.gather(*(post(client, answers(form_id)) for _ in range(3)))
    locations = {first[1], again[1], *(location for _, location, _ in at_once)}
    assert len(locations) == 1
    assert {first[0], again[0], *(status for status, _, _ in at_once)} == {303}
    stored = await counts(container)
    assert stored["tickets"] == 1
    assert stored["customers"] == 1
    assert stored["consents"] == 3
    assert stored["messages"] == 1  # one acknowledgement

    other = await post(client, answers(await open_form(client)))
    assert other[1] != first[1]
    assert (await counts(container))["tickets"] == 2


# ---------------------------------------------------------------- hostile input


async def test_c3_1_6_markup_is_stored_as_text_and_escaped_when_shown(
    client: Client, container: Container
) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)> {reference} %s'
    form_id = await open_form(client)
    status, _, page = await post(client, answers(form_id, text=hostile, contact=hostile))
    assert status == 400
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page

    status, location, _ = await post(client, answers(form_id, text=hostile))
    assert status == 303
    ticket = await filed(container, location)
    assert ticket.text == hostile  # inert data, exactly as written
    assert "<script>" not in await (await client.get(location)).text()


async def test_c3_1_6_operator_keys_and_unknown_fields_are_refused(
    client: Client, container: Container
) -> None:
    form_id = await open_form(client)
    for extra in ({"$where": "sleep(5000)"}, {"category[$ne]": "x"}, {"customer_id": "a"}):
        status, _, page = await post(client, {**answers(form_id), **extra})
        assert status == 400
        assert "do not belong to this form" in page
        assert re.search(r'id="consent_processing"[^>]*checked', page)  # the rest is kept
    repeated = "&".join(f"{name}={value}" for name, value in answers(form_id).items()) + "&rating=5"
    status, _, _ = await raw_post(client, repeated.encode())
    assert status == 400
    for hostile in ({"category": "$where"}, {"category": '{"$ne": null}'}, {"rating": "9"}):
        status, _, page = await post(client, answers(form_id, **hostile))
        assert status == 400
    status, _, page = await post(client, {**answers(form_id), "form_id": "../../etc/passwd"})
    assert status == 400
    assert "../../etc/passwd" not in page
    await nothing_stored(container)


async def test_c3_1_6_broken_utf8_and_lone_surrogates_are_refused(
    client: Client, container: Container
) -> None:
    form_id = await open_form(client)
    base = "&".join(f"{name}={value}" for name, value in answers(form_id, text=None).items())
    for text in (b"%ED%A0%80 lone surrogate", b"\xed\xa0\x80 raw surrogate", b"%FF%FE broken"):
        status, _, page = await raw_post(client, base.encode() + b"&text=" + text)
        assert status == 400
        assert "could not be read" in page
    await nothing_stored(container)
    # a query string that is not UTF-8 is only a language hint that matches nothing
    response = await client.get("/feedback?lang=%ED%A0%80%FF")
    assert response.status == 200


async def test_c3_1_6_control_characters_are_dropped(client: Client, container: Container) -> None:
    form_id = await open_form(client)
    _, location, _ = await post(client, answers(form_id, text="Late\x00 parcel\x1b again\x7f"))
    ticket = await filed(container, location)
    assert ticket.text == "Late parcel again"


async def test_c3_1_6_huge_bodies_are_refused_before_they_are_read(
    client: Client, container: Container
) -> None:
    form_id = await open_form(client)
    status, _, page = await post(client, answers(form_id, text="x" * (70 * 1024)))
    assert status == 413
    assert "too large" in page

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length to go by
        yield "&".join(f"{k}={v}" for k, v in answers(form_id).items()).encode()
        for _ in range(100):
            yield b"x" * 1024

    status, _, page = await raw_post(client, chunked())
    assert status == 413
    await nothing_stored(container)


async def test_c3_1_6_other_content_types_are_refused(client: Client, container: Container) -> None:
    form_id = await open_form(client)
    response = await client.post("/feedback", json=answers(form_id), allow_redirects=False)
    assert response.status == 415
    await nothing_stored(container)


async def test_no_personal_data_in_logs(
    client: Client, container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    # Our code and the HTTP server's access log; the driver logs commands at DEBUG, and
    # bot.logs keeps it at WARNING or above.
    caplog.set_level(logging.DEBUG, logger="bot")
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    form_id = await open_form(client)
    await post(client, answers(form_id, contact="+86 138 0013 8000", text="Secret words here"))
    await post(client, answers(form_id, contact="ann@example.com", text="x"))
    logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    for personal in ("13800138000", "ann@example.com", "Secret words", form_id):
        assert personal not in logged


# ---------------------------------------------------------------- the channels page


@pytest.mark.parametrize(("lang", "html_lang"), [("en", "en"), ("zh_CN", "zh-CN")])
async def test_c2_3_the_channels_page_lists_every_channel(
    client: Client, lang: str, html_lang: str
) -> None:
    response = await client.get("/channels", params={"lang": lang})
    assert response.status == 200
    page = await response.text()
    assert f'<html lang="{html_lang}">' in page
    assert "<script" not in page  # the snippet is shown, never run
    found = re.search(r'<code id="widget-snippet">([^<]*)</code>', page)
    assert found is not None
    snippet = html.unescape(found.group(1))
    assert f'<script src="{BASE}/widget/widget.js"></script>' in snippet
    assert f'FeedbackWidget.init({{ server: "{BASE}" }});' in snippet
    assert f'href="https://t.me/{BOT_USERNAME}"' in page
    assert f">{BASE}/feedback</a>" in page
    for section in ("channel-widget", "channel-telegram", "channel-form"):
        assert f'id="{section}"' in page


async def test_c2_3_without_a_bot_username_telegram_is_said_to_be_unavailable(
    container: Container,
) -> None:
    app = form_app(container)
    async with TestClient(TestServer(app)) as client:
        page = await (await client.get("/channels", params={"lang": "en"})).text()
    assert "t.me" not in page
    assert "not available" in page
    assert "/widget/widget.js" in page  # the base URL is taken from the request


# ---------------------------------------------------------------- the database is down


async def test_c3_2_2_with_the_database_down_nothing_is_acknowledged_and_nothing_breaks(
    settings: Settings,
) -> None:
    down = Container.build(
        settings.model_copy(update={"mongodb_timeout_ms": 100}),
        f"mongodb://127.0.0.1:{free_port()}/",
    )
    app = form_app(down)
    pages = app[FORM_PAGES]
    async with TestClient(TestServer(app)) as client:
        form_id = await open_form(client)  # the page itself needs no database
        status, location, page = await post(client, answers(form_id))
        assert status == 503
        assert location == ""
        assert "nothing was saved" in page
        assert f'name="form_id" value="{form_id}"' in page  # sending again is safe
        assert ">\nThe parcel arrived two days late.</textarea>" in page
        status, _, page = await post(client, answers(form_id, action="decline"))
        assert status == 503
        reference = "FB-2026-000001"
        response = await client.get(
            "/feedback/done", params={"ref": reference, "k": pages.sign(reference), "lang": "en"}
        )
        assert response.status == 503
        assert "not available right now" in await response.text()
    await close_abandoned_sockets()


async def test_a_stream_of_forms_from_one_address_is_refused(container: Container) -> None:
    container.settings = container.settings.model_copy(
        update={"form_posts_per_ip": "2 per hour", "form_link_secret": SecretStr(SECRET.decode())}
    )
    async with TestClient(TestServer(build_app(container))) as client:
        statuses = []
        for _ in range(3):
            form_id = await open_form(client)
            status, _, _ = await post(client, answers(form_id, text="x"))
            statuses.append(status)
    assert statuses == [400, 400, 429]  # the third is refused before it is even read


@pytest.mark.parametrize(
    ("lang", "version_text", "rights_text"),
    [
        ("en", f"Privacy policy, version {NOTICE_VERSION}", "we answer within 15 days"),
        ("zh_CN", f"隐私政策，版本 {NOTICE_VERSION}", "15 天内"),
    ],
)
async def test_c6_1_the_privacy_policy_is_published_with_its_version(
    client: Client, lang: str, version_text: str, rights_text: str
) -> None:
    response = await client.get("/privacy", params={"lang": lang})
    assert response.status == 200
    page = html.unescape(await response.text())
    assert version_text in page
    assert rights_text in page
    assert "/privacy" in page
    # The same words every channel asks agreement to (C6.2).
    notice = "privacy notice, version" if lang == "en" else "隐私告知"
    assert notice in page
    form = await (await client.get("/feedback", params={"lang": lang})).text()
    assert 'id="policy-link"' in form
