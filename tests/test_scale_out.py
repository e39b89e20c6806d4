"""Several service processes on one Redis and one database (issue 8, "Scale-out").

Two real `python -m bot serve` processes: a widget customer on the first hears a reply
that staff send from the console of the second; the console's live updates cross too;
one process at a time polls Telegram, and the other takes over when it dies.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.fernet import Fernet
from limits import parse
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from pydantic import ValidationError

from bot.app import client_address
from bot.config import ROOT, Settings
from bot.sharing import SharedStorage, close_rate_limits, rate_limit_storage
from bot.storage import Repositories
from bot.storage.embedded import free_port
from tests.channels.widget import WidgetVisitor
from tests.console.support import CSRF, PASSWORD, add_staff
from tests.fake_telegram import FakeTelegram
from tests.processes import Service, get, running_service, service_env
from tests.support import eventually

FORM_SECRET = "a-form-link-secret-shared-by-every-process"
SESSION_KEY = Fernet.generate_key().decode()
REPLY_KEY = re.compile(r'name="key" value="([^"]+)"')


def test_redis_needs_the_secrets_every_process_shares(redis_url: str) -> None:
    with pytest.raises(ValidationError, match="BOT_FORM_LINK_SECRET and BOT_CONSOLE_SESSION_KEY"):
        Settings(_env_file=None, redis_url=redis_url)
    with pytest.raises(ValidationError, match="so BOT_CONSOLE_SESSION_KEY must be set"):
        Settings(_env_file=None, redis_url=redis_url, form_link_secret=FORM_SECRET)
    Settings(
        _env_file=None,
        redis_url=redis_url,
        form_link_secret=FORM_SECRET,
        console_session_key=SESSION_KEY,
    )
    Settings(_env_file=None)  # one process: random per start is fine
    # From the command line: a clear line and exit code 2, no traceback, no echo of secrets.
    env = service_env(BOT_REDIS_URL=redis_url, BOT_CONSOLE_SESSION_KEY=SESSION_KEY)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "BOT_FORM_LINK_SECRET must be set" in result.stderr
    assert "Traceback" not in result.stderr
    assert SESSION_KEY not in result.stderr


async def test_rate_limits_are_counted_once_for_every_process(redis_url: str) -> None:
    settings = Settings(
        _env_file=None,
        redis_url=redis_url,
        form_link_secret=FORM_SECRET,
        console_session_key=SESSION_KEY,
    )
    # Two processes' storages: what one counts, the other sees.
    first, second = rate_limit_storage(settings), rate_limit_storage(settings)
    try:
        limit = parse("3 per minute")
        key = f"test-{id(first)}"
        one, two = SlidingWindowCounterRateLimiter(first), SlidingWindowCounterRateLimiter(second)
        assert [await one.hit(limit, key), await two.hit(limit, key)] == [True, True]
        assert await one.hit(limit, key)
        assert not await two.hit(limit, key)
    finally:
        await close_rate_limits(first)
        await close_rate_limits(second)


@pytest.mark.parametrize(
    ("trusted", "forwarded", "client"),
    [
        ("", "203.0.113.7", "127.0.0.1"),  # no proxy configured: the header is anyone's
        ("10.0.0.0/8", "203.0.113.7", "127.0.0.1"),  # the peer is not our proxy
        ("127.0.0.1", "203.0.113.7", "203.0.113.7"),
        ("127.0.0.1,10.0.0.0/8", "203.0.113.7, 10.1.2.3", "203.0.113.7"),  # two proxies
        ("127.0.0.1", "198.51.100.1, 203.0.113.7", "203.0.113.7"),  # the client wrote one
        ("127.0.0.1", "not-an-address", "127.0.0.1"),
        ("127.0.0.1", None, "127.0.0.1"),
    ],
)
async def test_behind_our_proxies_the_client_address_comes_from_x_forwarded_for(
    trusted: str, forwarded: str | None, client: str
) -> None:
    settings = Settings(_env_file=None, trusted_proxies=trusted)

    async def remote(request: web.Request) -> web.Response:
        return web.Response(text=request.remote or "")

    app = web.Application(middlewares=[client_address(settings.proxy_networks)])
    app.router.add_get("/", remote)
    async with TestClient(TestServer(app, host="127.0.0.1")) as http:
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        response = await http.get("/", headers=headers)
        assert await response.text() == client


@pytest.mark.parametrize(
    ("trusted", "proto", "secure"),
    [
        ("127.0.0.1", "https", True),  # TLS ends at our proxy
        ("127.0.0.1", "https, http", True),  # the first proxy's word
        ("127.0.0.1", "http", False),
        ("127.0.0.1", None, False),
        ("10.0.0.0/8", "https", False),  # the peer is not our proxy: anyone's header
        ("", "https", False),
    ],
)
async def test_c3_1_4_cookies_set_over_https_behind_our_proxies_are_secure(
    trusted: str, proto: str | None, secure: bool
) -> None:
    settings = Settings(_env_file=None, trusted_proxies=trusted)

    async def signed_in(request: web.Request) -> web.Response:
        response = web.Response(text=request.scheme)
        response.set_cookie("session", "x", httponly=True)
        return response

    async def redirected(request: web.Request) -> web.Response:
        found = web.HTTPFound("/")
        found.set_cookie("session", "y")
        raise found

    app = web.Application(middlewares=[client_address(settings.proxy_networks)])
    app.router.add_get("/", signed_in)
    app.router.add_get("/away", redirected)
    async with TestClient(TestServer(app, host="127.0.0.1")) as http:
        headers = {"X-Forwarded-Proto": proto} if proto else {}
        response = await http.get("/", headers=headers)
        assert await response.text() == ("https" if secure else "http")
        assert ("Secure" in response.headers["Set-Cookie"]) is secure
        assert "HttpOnly" in response.headers["Set-Cookie"]
        away = await http.get("/away", headers=headers, allow_redirects=False)
        assert away.status == 302
        assert ("Secure" in away.headers["Set-Cookie"]) is secure


async def test_while_redis_is_unreachable_each_process_counts_the_limits_itself() -> None:
    settings = Settings(
        _env_file=None,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        form_link_secret=FORM_SECRET,
        console_session_key=SESSION_KEY,
    )
    storage = rate_limit_storage(settings)
    try:
        limiter = SlidingWindowCounterRateLimiter(storage)
        limit = parse("2 per minute")
        # Not a wall (the first hits pass), and not lifted either (password guessing).
        assert [await limiter.hit(limit, "k") for _ in range(3)] == [True, True, False]
        await limiter.clear(limit, "k")  # a sign-in that succeeded
        assert await limiter.hit(limit, "k")
    finally:
        await close_rate_limits(storage)


async def test_the_limits_are_shared_again_once_redis_answers(redis_url: str) -> None:
    settings = Settings(
        _env_file=None,
        redis_url=redis_url,
        form_link_secret=FORM_SECRET,
        console_session_key=SESSION_KEY,
    )
    storage, other = rate_limit_storage(settings), rate_limit_storage(settings)
    assert isinstance(storage, SharedStorage)
    try:
        limiter = SlidingWindowCounterRateLimiter(storage)
        limit = parse("2 per minute")
        key = f"test-{id(storage)}"
        storage.down_until = time.monotonic() + 60  # as after a failure: counted here
        assert await limiter.hit(limit, key)
        storage.down_until = time.monotonic()  # its rest is over
        assert await SlidingWindowCounterRateLimiter(other).hit(limit, key)
        assert await limiter.hit(limit, key)  # in Redis again: the other process's hit counts
        assert not await limiter.hit(limit, key)
        assert storage.down_until == 0
    finally:
        await close_rate_limits(storage)
        await close_rate_limits(other)


# ------------------------------------------------------------------ two real processes


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


def shared_env(
    mongo_uri: str, db_name: str, redis_url: str, fake: FakeTelegram, tmp_path: Path
) -> dict[str, str]:
    return {
        "MONGODB_URI": mongo_uri,
        "BOT_MONGODB_DATABASE": db_name,
        "BOT_DATA_DIR": str(tmp_path / "data"),
        "BOT_REDIS_URL": redis_url,
        "BOT_FORM_LINK_SECRET": FORM_SECRET,
        "BOT_CONSOLE_SESSION_KEY": SESSION_KEY,
        "BOT_TELEGRAM_TOKEN": fake.token,
        "BOT_TELEGRAM_API_BASE": fake.base_url,
        "BOT_TELEGRAM_POLLING_TIMEOUT": "1",
        "BOT_TELEGRAM_POLLING_LEASE_SECONDS": "3",
        # A dispatcher wakes at once for what its own process enqueues, and otherwise
        # not during the test: so the process that sends a message is the one that wrote
        # it, and a reply written on the second process must cross to the first's socket.
        "BOT_DELIVERY_POLL_SECONDS": "3600",
    }


@asynccontextmanager
async def two_services(tmp_path: Path, env: dict[str, str]) -> AsyncIterator[list[Service]]:
    with ExitStack() as stack:
        services = [stack.enter_context(running_service(tmp_path, **env)) for _ in range(2)]
        # In threads: the fake Bot API answers them from this event loop meanwhile.
        await asyncio.gather(*(asyncio.to_thread(s.wait_for_health, 200) for s in services))
        yield services


def polling_lease_holder(
    repos: Repositories, fake: FakeTelegram
) -> Callable[[], Awaitable[int | None]]:
    """A look at which process (its pid) holds the Telegram polling lease, if any."""
    lease = f"telegram-polling:{fake.bot_id}"

    async def holder() -> int | None:
        lock = await repos.locks.collection.find_one({"name": lease}, sort=[("gen", -1)])
        return None if lock is None else int(str(lock["owner"]).rsplit(":", 1)[1])

    return holder


async def polling_and_other(
    services: Sequence[Service], holder: Callable[[], Awaitable[int | None]]
) -> tuple[Service, Service]:
    """Of two services, the one that took the polling lease, and the other."""
    pid = await eventually(holder, "a process to hold the polling lease")
    (polling,) = [s for s in services if s.process.pid == pid]
    (other,) = [s for s in services if s is not polling]
    return polling, other


def logged(service: Service, message: str) -> bool:
    lines = service.log.read_text().splitlines()
    return any(json.loads(line).get("msg") == message for line in lines if line.startswith("{"))


def metric(service: Service, pattern: str) -> float:
    _, body = get(service.base + "/metrics")
    found = re.search(pattern + r" (\S+)", body.decode())
    return float(found.group(1)) if found else 0.0


def sent_count(service: Service, channel: str) -> float:
    return metric(service, rf'feedback_deliveries_total\{{channel="{channel}",outcome="sent"\}}')


class Console:
    """A staff member's browser on one process: the real sign-in form, cookies, CSRF."""

    def __init__(self, base: str) -> None:
        self.base = base
        # unsafe: keep cookies for an IP address host (127.0.0.1)
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def csrf(self, path: str) -> str:
        async with self.http.get(self.base + path) as response:
            found = CSRF.search(await response.text())
        assert found is not None, path
        return found.group(1)

    async def sign_in(self, username: str) -> None:
        data = {
            "username": username,
            "password": PASSWORD,
            "csrf": await self.csrf("/console/login"),
            "next": "/console",
        }
        async with self.http.post(
            self.base + "/console/login", data=data, allow_redirects=False
        ) as response:
            assert response.status == 303, await response.text()

    async def reply(self, ticket_id: str, text: str) -> None:
        async with self.http.get(f"{self.base}/console/tickets/{ticket_id}") as response:
            page = await response.text()
        csrf, key = CSRF.search(page), REPLY_KEY.search(page)
        assert csrf is not None, page[:2000]
        assert key is not None, page[:2000]
        data = {"text": text, "csrf": csrf.group(1), "key": key.group(1)}
        async with self.http.post(
            f"{self.base}/console/tickets/{ticket_id}/reply", data=data, allow_redirects=False
        ) as response:
            assert response.status == 303, await response.text()
            assert "done=reply" in response.headers["Location"]

    async def listen(self) -> tuple[socketio.AsyncClient, list[Any]]:
        """The console page's live connection (/staff), signed in by the session cookie."""
        heard: list[Any] = []
        client = socketio.AsyncClient(reconnection=False)

        async def on_ticket(data: Any) -> None:
            heard.append(data)

        client.on("ticket", on_ticket, namespace="/staff")
        cookie = "; ".join(f"{c.key}={c.value}" for c in self.http.cookie_jar)
        await client.connect(
            self.base,
            namespaces=["/staff"],
            headers={"Cookie": cookie},
            transports=["websocket"],
            wait_timeout=10,
        )
        return client, heard

    async def close(self) -> None:
        await self.http.close()


async def close_listener(client: socketio.AsyncClient) -> None:
    await client.shutdown()
    if client.eio.http is not None and not client.eio.http.closed:
        await client.eio.http.close()


@pytest.mark.slow
async def test_a_reply_from_the_console_of_one_process_reaches_a_widget_on_another(
    tmp_path: Path,
    mongo_uri: str,
    db_name: str,
    redis_url: str,
    repos: Repositories,
    fake: FakeTelegram,
) -> None:
    await add_staff(repos, username="agent1")
    env = shared_env(mongo_uri, db_name, redis_url, fake, tmp_path)
    async with two_services(tmp_path, env) as (first, second):
        console = Console(second.base)
        visitor = WidgetVisitor(first.base)
        listener: socketio.AsyncClient | None = None
        try:
            await console.sign_in("agent1")
            listener, heard = await console.listen()
            await visitor.connect()
            ack = await visitor.give_feedback("The checkout froze twice today.")

            # The ticket was filed on the first process; staff on the second hear of it.
            async def filed() -> Any:
                return next((h for h in heard if h["what"] == "filed"), None)

            event = await eventually(filed, "the live 'filed' event on the other process")
            assert event["reference"] in ack["text"]

            # The first process sent the acknowledgement. Wait until its dispatcher is
            # asleep again: a drain still running there could claim the reply too.
            async def first_asleep() -> bool | None:
                return True if metric(first, "feedback_delivery_idle") == 1 else None

            await eventually(first_asleep, "the first process's dispatcher to go to sleep")

            before = sent_count(second, "widget")
            by_first = sent_count(first, "widget")
            assert by_first >= 1  # the acknowledgement, sent where it was filed
            await console.reply(event["ticket_id"], "We found the cause and fixed it.")
            reply = await visitor.message_containing("We found the cause and fixed it.")
            assert reply["author"] == "staff"

            # The second process sent it: its emit went through Redis to the first's socket.
            # (It counts a message once it is marked sent, a moment after the emit.)
            async def counted() -> bool | None:
                return True if sent_count(second, "widget") == before + 1 else None

            await eventually(counted, "the second process to count the reply as sent")
            assert sent_count(first, "widget") == by_first

            async def replied() -> Any:
                return next((h for h in heard if h["what"] == "staff_message"), None)

            await eventually(replied, "the live 'staff_message' event")
        finally:
            if listener is not None:
                await close_listener(listener)
            await visitor.disconnect()
            await console.close()
        # A clean stop closes the Redis connections too, and nothing went wrong on the way.
        assert await asyncio.to_thread(first.stop) == 0
        assert await asyncio.to_thread(second.stop) == 0
        for service in (first, second):
            lines = [json.loads(x) for x in service.log.read_text().splitlines() if x[:1] == "{"]
            assert [x for x in lines if x["level"] not in ("debug", "info")] == []


@pytest.mark.slow
async def test_one_process_polls_telegram_and_another_takes_over_when_it_dies(
    tmp_path: Path,
    mongo_uri: str,
    db_name: str,
    redis_url: str,
    repos: Repositories,
    fake: FakeTelegram,
) -> None:
    env = shared_env(mongo_uri, db_name, redis_url, fake, tmp_path)
    holder = polling_lease_holder(repos, fake)

    async with two_services(tmp_path, env) as services:
        polling, idle = await polling_and_other(services, holder)
        pid = polling.process.pid
        await fake.wait_for("getUpdates", timeout=20)
        await asyncio.sleep(4)  # longer than the lease: the other process keeps waiting
        assert await holder() == pid
        assert logged(polling, "telegram polling started")
        assert not logged(idle, "telegram polling started")

        update = fake.user_command(6001, "help")
        await fake.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 6001)
        key = f"telegram:{fake.bot_id}:{update['update_id']}"

        async def recorded() -> bool | None:
            return True if await repos.inbound.seen(key) else None

        await eventually(recorded, "the update to be recorded as handled")

        polling.process.kill()  # kill -9: no release, the lease has to run out
        polling.process.wait()

        async def taken_over() -> int | None:
            now = await holder()
            return now if now == idle.process.pid else None

        await eventually(taken_over, "the other process to take the lease", timeout=30)
        fake.user_command(6002, "help")
        await fake.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 6002, timeout=30)
        assert logged(idle, "telegram polling started")
        # The update the dead process had answered is not answered again.
        answers = [c for c in fake.calls_of("sendMessage") if c.chat_id == 6001]
        assert len(answers) == 1


@pytest.mark.slow
async def test_an_update_in_hand_when_the_polling_process_dies_is_handled_by_the_next(
    tmp_path: Path,
    mongo_uri: str,
    db_name: str,
    redis_url: str,
    repos: Repositories,
    fake: FakeTelegram,
) -> None:
    # aiogram's polling confirmed an update to Telegram as soon as it had started it, so
    # a process killed while handling it lost it. Now it stays with Telegram until handled.
    env = shared_env(mongo_uri, db_name, redis_url, fake, tmp_path)
    env["BOT_TELEGRAM_UPDATE_CLAIM_SECONDS"] = "2"  # the dead process's claim runs out soon
    holder = polling_lease_holder(repos, fake)

    async with two_services(tmp_path, env) as services:
        polling, other = await polling_and_other(services, holder)
        hung = fake.hold("sendMessage", chat_id=7001)  # the answer is on its way when it dies
        try:
            update_id = fake.user_command(7001, "help")["update_id"]
            await fake.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 7001)
            asked = len(fake.calls_of("getUpdates"))
            await fake.wait_for("getUpdates", count=asked + 2)  # polling went on meanwhile
            assert update_id in [u["update_id"] for u in fake.pending_updates]

            polling.process.kill()  # kill -9
            polling.process.wait()

            answers = await fake.wait_for(
                lambda c: c.method == "sendMessage" and c.chat_id == 7001, count=2, timeout=30
            )
            assert answers[1].result is not None  # answered, by the process that took over

            async def confirmed() -> bool | None:
                return True if fake.pending_updates == [] else None

            await eventually(confirmed, "the update to be confirmed once handled")
            answered = [c for c in fake.calls_of("sendMessage") if c.chat_id == 7001]
            assert len(answered) == 2  # the hung one, and the one after the takeover
            assert logged(other, "telegram polling started")
        finally:
            hung.set()
