"""Who may use the staff console (C3.1.4): sign-in, sessions, CSRF, roles, throttling."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Container, build_app
from bot.config import Settings
from bot.console.auth import require, staff_of
from bot.domain.models import StaffRole
from tests.console.support import PASSWORD, Client, add_staff, login_csrf, sign_in
from tests.processes import service_env


def console_app(container: Container) -> web.Application:
    """The service's app, with probe routes behind the console's guard."""
    app = build_app(container)

    async def whoami(request: web.Request) -> web.Response:
        return web.Response(text=staff_of(request).username)

    async def admin_only(request: web.Request) -> web.Response:
        return web.Response(text=require(request, StaffRole.ADMIN).username)

    async def change(request: web.Request) -> web.Response:
        return web.Response(text="changed")

    app.router.add_get("/console/_test/whoami", whoami)
    app.router.add_get("/console/_test/admin", admin_only)
    app.router.add_post("/console/_test/change", change)
    return app


@pytest.fixture
async def client(container: Container) -> AsyncIterator[Client]:
    async with TestClient(TestServer(console_app(container))) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/console"), ("GET", "/console/_test/whoami"), ("POST", "/console/_test/change")],
)
async def test_c3_1_4_an_anonymous_request_is_refused(
    client: Client, method: str, path: str
) -> None:
    headers = {}
    if method == "POST":
        headers["X-CSRF-Token"] = await login_csrf(client)
    response = await client.request(method, path, headers=headers, allow_redirects=False)
    if method == "GET":
        assert response.status == 302
        assert response.headers["Location"].startswith("/console/login?next=")
    else:
        assert response.status == 401


async def test_signing_in_and_out(client: Client, container: Container) -> None:
    staff, _ = await sign_in(client, container.repos, username="mei")
    response = await client.get("/console/_test/whoami")
    assert await response.text() == "mei"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    token = await login_csrf(client)
    out = await client.post("/console/logout", data={"csrf": token}, allow_redirects=False)
    assert out.status == 303
    again = await client.get("/console/_test/whoami", allow_redirects=False)
    assert again.status == 302
    stored = await container.repos.staff.get(staff.id)
    assert stored is not None
    assert stored.password_hash.startswith("$argon2id$")


async def test_a_post_without_the_csrf_token_is_refused(
    client: Client, container: Container
) -> None:
    _, token = await sign_in(client, container.repos)
    assert (await client.post("/console/_test/change", data={})).status == 403
    wrong = await client.post("/console/_test/change", data={"csrf": "forged"})
    assert wrong.status == 403
    ok = await client.post("/console/_test/change", data={"csrf": token})
    assert ok.status == 200
    header = await client.post("/console/_test/change", headers={"X-CSRF-Token": token})
    assert header.status == 200


def multipart(**fields: bytes) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body with these raw fields, and its Content-Type."""
    boundary = b"b0undary"
    body = b"".join(
        b"--"
        + boundary
        + b'\r\nContent-Disposition: form-data; name="'
        + name.encode()
        + b'"\r\n\r\n'
        + value
        + b"\r\n"
        for name, value in fields.items()
    )
    body += b"--" + boundary + b"--\r\n"
    return body, {"Content-Type": "multipart/form-data; boundary=" + boundary.decode()}


async def test_a_multipart_form_that_is_not_utf8_is_refused_not_a_500(
    client: Client, container: Container
) -> None:
    body, headers = multipart(username=b"\xff\xfe", password=b"x", csrf=b"x")
    response = await client.post("/console/login", data=body, headers=headers)
    assert response.status == 400  # before sign-in
    _, token = await sign_in(client, container.repos)
    body, headers = multipart(csrf=token.encode(), text=b"caf\xc3\x28 \xed\xa0\x80")
    response = await client.post("/console/_test/change", data=body, headers=headers)
    assert response.status == 400  # and signed in, on any form
    body, headers = multipart(csrf=token.encode(), text="café".encode())
    assert (await client.post("/console/_test/change", data=body, headers=headers)).status == 200
    unknown = {"Content-Type": "application/x-www-form-urlencoded; charset=no-such-charset"}
    response = await client.post("/console/_test/change", data=b"csrf=x", headers=unknown)
    assert response.status == 400


async def test_the_login_form_itself_needs_the_token(client: Client, container: Container) -> None:
    await add_staff(container.repos)
    response = await client.post(
        "/console/login", data={"username": "agent1", "password": PASSWORD}
    )
    assert response.status == 403


async def test_an_agent_cannot_reach_admin_pages(client: Client, container: Container) -> None:
    await sign_in(client, container.repos, role=StaffRole.AGENT)
    assert (await client.get("/console/_test/admin")).status == 403


async def test_an_admin_can(client: Client, container: Container) -> None:
    await sign_in(client, container.repos, role=StaffRole.ADMIN, username="boss")
    assert await (await client.get("/console/_test/admin")).text() == "boss"


async def test_the_sixth_bad_password_in_a_row_is_throttled(
    client: Client, container: Container
) -> None:
    await add_staff(container.repos)
    token = await login_csrf(client)

    async def attempt(password: str) -> int:
        response = await client.post(
            "/console/login",
            data={"username": "agent1", "password": password, "csrf": token},
            allow_redirects=False,
        )
        return response.status

    assert [await attempt("guess") for _ in range(5)] == [401] * 5
    assert await attempt("guess") == 429
    assert await attempt(PASSWORD) == 429  # even the right one, until the window passes


async def test_a_deactivated_account_loses_its_session(
    client: Client, container: Container
) -> None:
    staff, _ = await sign_in(client, container.repos)
    staff_collection = container.repos.staff.collection
    await staff_collection.update_one({"_id": staff.id}, {"$set": {"active": False}})
    response = await client.get("/console/_test/whoami", allow_redirects=False)
    assert response.status == 302


async def test_next_never_leads_off_the_console(client: Client, container: Container) -> None:
    await add_staff(container.repos)
    token = await login_csrf(client)
    response = await client.post(
        "/console/login",
        data={"username": "agent1", "password": PASSWORD, "csrf": token, "next": "//evil.example"},
        allow_redirects=False,
    )
    assert response.headers["Location"] == "/console"


@pytest.mark.slow
def test_staff_add_creates_the_first_admin(settings: Settings, mongo_uri: str) -> None:
    env = service_env(MONGODB_URI=mongo_uri, BOT_MONGODB_DATABASE=settings.mongodb_database)

    def staff_add(*args: str, password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", "staff", "add", *args, "--password-stdin"],
            input=password + "\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    result = staff_add("root", "--role", "admin", password="a long enough password")
    assert result.returncode == 0, result.stderr
    assert "added admin 'root'" in result.stdout
    short = staff_add("x", password="short")
    assert short.returncode == 1
    assert "at least 12" in short.stderr
    again = staff_add("root", password="another long password")
    assert again.returncode == 1
    assert "already" in again.stderr


async def test_bad_passwords_sent_at_once_are_throttled_too(
    client: Client, container: Container
) -> None:
    await add_staff(container.repos)
    token = await login_csrf(client)

    async def attempt() -> int:
        response = await client.post(
            "/console/login",
            data={"username": "agent1", "password": "guess", "csrf": token},
            allow_redirects=False,
        )
        return response.status

    statuses = await asyncio.gather(*(attempt() for _ in range(12)))
    assert sorted(statuses) == [401] * 5 + [429] * 7


async def test_a_live_refresh_after_signing_out_gets_401_not_the_login_page(
    client: Client, container: Container
) -> None:
    headers = {"X-Requested-With": "console-refresh"}
    response = await client.get("/console/_test/whoami", headers=headers, allow_redirects=False)
    assert response.status == 401
