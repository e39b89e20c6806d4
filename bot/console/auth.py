"""Who may use the staff console: accounts, sessions, CSRF, roles, the audit log (C3.1.4).

- Passwords are hashed with argon2id (argon2-cffi's defaults follow RFC 9106).
- A session is an encrypted, signed cookie (aiohttp-session with Fernet): nothing to
  look up per request but the staff record, which must still be active.
- Every state-changing request under /console carries the session's CSRF token (a form
  field `csrf` or the header X-CSRF-Token), the login form included.
- Failed logins are limited per username and per address: the sixth bad password in a
  row within the window is refused before the password is even checked.
- Every console response carries a strict Content-Security-Policy and friends.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp_session import Session, get_session, new_session
from aiohttp_session import setup as setup_sessions
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet
from limits import parse
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from bot.domain.models import AuditEntry, Staff, StaffRole
from bot.domain.text import N_, Text
from bot.templating import environment

if TYPE_CHECKING:
    from bot.app import Container

log = logging.getLogger(__name__)

STAFF_KEY = web.RequestKey("console.staff", Staff)
COOKIE = "feedback_console"
LOGIN, LOGOUT = "/console/login", "/console/logout"
RANK = {StaffRole.AGENT: 1, StaffRole.SUPERVISOR: 2, StaffRole.ADMIN: 3}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FRAGMENT = "console-refresh"  # X-Requested-With of the console script's own fetches
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

TITLE = N_("Staff console: sign in")
USERNAME = N_("User name")
PASSWORD = N_("Password")
SIGN_IN = N_("Sign in")
WRONG = N_("The user name or the password is wrong.")
THROTTLED = N_("Too many failed attempts. Please wait a few minutes and try again.")
FORBIDDEN = N_("This request was refused: reload the page and try again.")
OTHER_ROLE = N_("This page is for another role.")

_hasher = PasswordHasher()  # argon2id
_templates = environment(Path(__file__).parent)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Checked against when the user name is unknown, so both cases take the same time.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def staff_of(request: web.Request) -> Staff:
    """The signed-in staff member (the guard has checked there is one)."""
    staff: Staff | None = request.get(STAFF_KEY)
    if staff is None:
        raise web.HTTPUnauthorized()
    return staff


def require(request: web.Request, role: StaffRole) -> Staff:
    staff = staff_of(request)
    if RANK[staff.role] < RANK[role]:
        text = _container(request).i18n.render(staff.locale, Text(OTHER_ROLE))
        raise web.HTTPForbidden(text=text)
    return staff


async def csrf_token(request: web.Request) -> str:
    session = await get_session(request)
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


async def audit(
    request: web.Request, action: str, target_type: str, target_id: str, **detail: str
) -> None:
    """Who looked at or exported whose personal data, and when (C3.1.4)."""
    await _container(request).repos.audit.append(
        AuditEntry(
            actor=staff_of(request).id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            detail=detail,
        )
    )


async def staff_for_socket(environ: dict[str, Any]) -> Staff | None:
    """The staff member behind a socket.io connection (the handshake carried the cookie)."""
    request: web.Request = environ["aiohttp.request"]
    return await _active_staff(_container(request), await get_session(request))


def _container(request: web.Request) -> Container:
    from bot.app import CONTAINER  # noqa: PLC0415 - bot.app imports this module

    return request.app[CONTAINER]


async def _active_staff(container: Container, session: Session) -> Staff | None:
    staff_id = session.get("staff_id")
    if not isinstance(staff_id, str):
        return None
    staff = await container.repos.staff.get(staff_id)
    return staff if staff is not None and staff.active else None


def _safe_next(target: str | None) -> str:
    # Only back into the console: never to another site ("//evil", "https://...").
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return "/console"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ConsoleAuth:
    def __init__(self, container: Container) -> None:
        self.container = container
        settings = container.settings
        # Shared by every process when several run (bot.sharing): N processes must not
        # allow N times the attempts.
        self.limiter = SlidingWindowCounterRateLimiter(container.rate_limits)
        self.failures = parse(settings.console_login_failures)
        # An office behind one address shares this one: larger than a single user's.
        self.failures_per_address = parse(settings.console_login_failures_per_address)
        self.storage = EncryptedCookieStorage(
            Fernet(settings.console_session_key.get_secret_value()),
            cookie_name=COOKIE,
            max_age=int(settings.console_session_hours * 3600),
            httponly=True,
            secure=settings.console_secure_cookies,
            samesite="Strict",
        )

    def register(self, app: web.Application) -> None:
        setup_sessions(app, self.storage)
        app.middlewares.append(self.guard)
        app.router.add_get(LOGIN, self.login_page)
        app.router.add_post(LOGIN, self.login)
        app.router.add_post(LOGOUT, self.logout)

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/console"):
            return await handler(request)
        try:
            await self._check(request)
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers.update(SECURITY_HEADERS)
            raise
        response.headers.update(SECURITY_HEADERS)
        return response

    async def _check(self, request: web.Request) -> None:
        session = await get_session(request)
        if request.method not in SAFE_METHODS:
            try:
                # Read (and kept by aiohttp for the handler) before anything else: a
                # multipart field that is not UTF-8 (UnicodeDecodeError) or in an unknown
                # charset was a 500 on every console form.
                form = await request.post()
            except (ValueError, LookupError):  # LookupError: a charset nobody knows
                raise web.HTTPBadRequest(text=self._t(self._locale(request), FORBIDDEN)) from None
            sent = request.headers.get("X-CSRF-Token")
            if sent is None:
                sent = str(form.get("csrf", ""))
            expected = session.get("csrf")
            if not isinstance(expected, str) or not hmac.compare_digest(
                sent.encode(), expected.encode()
            ):
                locale = self._locale(request)
                raise web.HTTPForbidden(text=self._t(locale, FORBIDDEN))
        if request.path == LOGIN or request.path.startswith("/console/static/"):
            return
        staff = await _active_staff(self.container, session)
        if staff is None:
            # A page's own refresh (the console script) must not get the login page as
            # the fragment it swaps in: it gets 401 and shows the console as offline.
            fragment = request.headers.get("X-Requested-With") == FRAGMENT
            if request.method in SAFE_METHODS and not fragment:
                raise web.HTTPFound(f"{LOGIN}?{_next_query(request.path_qs)}")
            raise web.HTTPUnauthorized()
        request[STAFF_KEY] = staff

    def _locale(self, request: web.Request) -> str:
        return self.container.i18n.negotiate(request.headers.get("Accept-Language"))

    def _t(self, locale: str, msgid: str) -> str:
        return self.container.i18n.render(locale, Text(msgid))

    async def _page(
        self, request: web.Request, *, error: str | None = None, status: int = 200
    ) -> web.Response:
        locale = self._locale(request)
        html = _templates.get_template("login.html").render(
            lang="zh-CN" if locale == "zh_CN" else "en",
            title=self._t(locale, TITLE),
            username_label=self._t(locale, USERNAME),
            password_label=self._t(locale, PASSWORD),
            submit=self._t(locale, SIGN_IN),
            error=error,
            csrf=await csrf_token(request),
            next=_safe_next(request.query.get("next")),
        )
        return web.Response(text=html, content_type="text/html", status=status)

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        return await self._page(request)

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        username = str(form.get("username", "")).strip()[:128]
        password = str(form.get("password", ""))[:1024]
        locale = self._locale(request)
        address = request.remote or "unknown"
        # Each attempt is counted before its password is checked: checking first let
        # attempts sent at the same moment all through. Success clears the user's count.
        user_key = ("login", "user", username.casefold())
        by_user = await self.limiter.hit(self.failures, *user_key)
        by_address = await self.limiter.hit(self.failures_per_address, "login", "address", address)
        allowed = by_user and by_address
        if not allowed:
            log.warning("console sign-in throttled")
            return await self._page(request, error=self._t(locale, THROTTLED), status=429)
        staff = await self.container.repos.staff.by_username(username) if username else None
        # argon2 takes a tenth of a second of CPU on purpose: off the event loop, and the
        # same work whether the account exists, is active or not (no timing tells).
        password_hash = staff.password_hash if staff is not None else _DUMMY_HASH
        right = await asyncio.to_thread(verify_password, password_hash, password)
        if staff is None or not right or not staff.active:
            log.info("console sign-in failed")
            return await self._page(request, error=self._t(locale, WRONG), status=401)
        await self.limiter.clear(self.failures, *user_key)
        session = await new_session(request)  # a new session id: no fixation
        session["staff_id"] = staff.id
        session["csrf"] = secrets.token_urlsafe(32)
        log.info("console sign-in", extra={"staff_id": staff.id})
        raise web.HTTPSeeOther(_safe_next(str(form.get("next", ""))))

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session = await get_session(request)
        session.invalidate()
        raise web.HTTPSeeOther(LOGIN)


def _next_query(path_qs: str) -> str:
    return urlencode({"next": path_qs})
