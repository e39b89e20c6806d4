"""Signing in to the staff console in tests, through the real login form."""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.console.auth import hash_password
from bot.domain.models import Staff, StaffRole
from bot.storage import Repositories

Client = TestClient[web.Request, web.Application]
PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def add_staff(
    repos: Repositories,
    *,
    role: StaffRole = StaffRole.AGENT,
    username: str = "agent1",
    locale: str = "en",
) -> Staff:
    staff = Staff(
        username=username,
        display_name=username.title(),
        password_hash=hash_password(PASSWORD),
        role=role,
        locale=locale,
    )
    return (await repos.staff.add(staff)).item


async def login_csrf(client: Client) -> str:
    """The CSRF token of the client's session, as the login page shows it."""
    page = await (await client.get("/console/login")).text()
    found = CSRF.search(page)
    assert found is not None, page
    return found.group(1)


async def sign_in(
    client: Client,
    repos: Repositories,
    *,
    role: StaffRole = StaffRole.AGENT,
    username: str = "agent1",
    locale: str = "en",
) -> tuple[Staff, str]:
    """Add a staff member, sign in as them; returns them and the session's CSRF token."""
    staff = await add_staff(repos, role=role, username=username, locale=locale)
    token = await login_csrf(client)
    response = await client.post(
        "/console/login",
        data={"username": username, "password": PASSWORD, "csrf": token, "next": "/console"},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    return staff, await login_csrf(client)  # signing in starts a new session


async def get_page(client: Client, path: str, status: int = 200) -> str:
    response = await client.get(path, allow_redirects=False)
    text = await response.text()
    assert response.status == status, text[:500]
    return text


async def post(client: Client, path: str, csrf: str, **data: str) -> str:
    """POST a console form; returns where it redirected to (the outcome is in the query)."""
    response = await client.post(path, data={"csrf": csrf, **data}, allow_redirects=False)
    assert response.status == 303, await response.text()
    return response.headers["Location"]
