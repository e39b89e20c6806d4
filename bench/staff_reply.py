"""Staff reply -> customer: how long from a staff member's reply in the console to the
customer having it, on a connected widget and on Telegram (the fake Bot API).

    .venv/bin/python bench/staff_reply.py                  # ~1-2 minutes
    .venv/bin/python bench/staff_reply.py --replies 200 --interval 0.05

W widget visitors (Node socket.io-client, bench/load.mjs) and T Telegram users (the fake
Bot API, tests/fake_telegram.py) each give feedback. A staff member signs in to the
console over HTTP (the real login form). Then, round robin over the tickets, one reply
every --interval seconds is POSTed to /console/tickets/<id>/reply, as the console's form
does. That goes through TicketService.staff_reply and the delivery outbox. Measured:
- POST: the console's answer (303) after the reply is stored;
- widget: from sending the POST to the socket.io `message` arriving at the visitor;
- Telegram: from sending the POST to the sendMessage call reaching the fake Bot API.
Telegram allows about 1 message/s per chat and the sender keeps to it, so the replies
are spread over T chats; with fewer chats the pacing is what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import tempfile
import time
from pathlib import Path

import aiohttp
from common import (
    BENCH_DB,
    AsyncService,
    NodeLoad,
    cpu_seconds,
    embedded_database,
    header,
    loadavg,
    percentile,
    table,
    telegram_env,
)
from telegram_inbound import Chats, User, queued, run_user

from bot.console.auth import hash_password
from bot.domain.models import Channel, Staff, StaffRole
from bot.storage import Database, Repositories
from tests.fake_telegram import FakeTelegram

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PASSWORD = "bench password, long enough"  # noqa: S105 - a throwaway database


async def sign_in(http: aiohttp.ClientSession, base: str, repos: Repositories) -> str:
    """Add a staff member and sign in through the login form; returns the CSRF token."""
    staff = Staff(
        username="bench",
        display_name="Bench",
        password_hash=hash_password(PASSWORD),
        role=StaffRole.AGENT,
        locale="en",
    )
    await repos.staff.add(staff)

    async def csrf() -> str:
        async with http.get(base + "/console/login") as page:
            found = CSRF.search(await page.text())
            if found is None:
                raise RuntimeError("no CSRF token on the login page")
            return found.group(1)

    form = {"username": "bench", "password": PASSWORD, "csrf": await csrf(), "next": "/console"}
    async with http.post(base + "/console/login", data=form, allow_redirects=False) as r:
        if r.status != 303:
            raise RuntimeError(f"sign-in failed: {r.status}")
    return await csrf()  # signing in starts a new session


async def run(args: argparse.Namespace, work: Path) -> None:
    with embedded_database(work) as db:
        async with FakeTelegram() as fake:
            env = telegram_env(fake.base_url, fake.token, webhook=False)
            async with AsyncService(work, db, **env) as svc:
                database = Database(db.uri, BENCH_DB)
                repos = Repositories.create(database)
                await fake.wait_for("getUpdates", timeout=60)
                load = NodeLoad(svc.base, work / "load.log")
                try:
                    await measure(args, svc.base, svc.pid, repos, fake, load)
                finally:
                    await asyncio.to_thread(load.close)
                    await database.close()


async def measure(  # noqa: PLR0915 - one benchmark, read top to bottom
    args: argparse.Namespace,
    base: str,
    pid: int,
    repos: Repositories,
    fake: FakeTelegram,
    load: NodeLoad,
) -> None:
    t0 = time.monotonic()
    await asyncio.to_thread(load.command, cmd="connect", n=args.widgets)
    prep = await asyncio.to_thread(load.command, cmd="feedback", concurrency=args.widgets)
    chats = Chats(fake)
    users = [User(fake, chats, 50_000 + i, queued, [], push=True) for i in range(args.telegrams)]
    await asyncio.gather(*(run_user(u) for u in users))
    visitors = (await asyncio.to_thread(load.command, cmd="visitors"))["visitors"]
    tickets: list[tuple[str, str]] = []  # (channel, ticket id)
    for v in visitors:  # type: ignore[attr-defined]
        customer = await repos.customers.find(Channel.WIDGET, f"visitor:{v}")
        ticket = customer and await repos.tickets.latest_open(customer.id)
        if ticket:
            tickets.append(("widget", ticket.id))
    for u in users:
        customer = await repos.customers.find(Channel.TELEGRAM, str(u.chat))
        ticket = customer and await repos.tickets.latest_open(customer.id)
        if ticket:
            tickets.append(("telegram", ticket.id))
    print(
        f"# {len(tickets)} tickets ready in {time.monotonic() - t0:.1f} s "
        f"(widget feedback failures: {prep['failed']})",
        flush=True,
    )
    await asyncio.to_thread(load.command, cmd="clearMessages")
    await asyncio.sleep(2)  # the acknowledgements' deliveries are done
    sent: dict[str, tuple[str, float, float]] = {}  # marker -> (channel, wall, monotonic)
    post_ms: list[float] = []
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    cpu0 = cpu_seconds(pid)
    started = time.monotonic()
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        token = await sign_in(http, base, repos)

        async def reply(i: int) -> None:
            channel, ticket_id = tickets[i % len(tickets)]
            marker = f"bench-{i}-{secrets.token_hex(4)}"
            form = {
                "csrf": token,
                "text": f"Thank you, we are on it ({marker}).",
                "key": secrets.token_hex(16),
            }
            sent[marker] = (channel, time.time(), time.monotonic())
            t = time.monotonic()
            url = f"{base}/console/tickets/{ticket_id}/reply"
            async with http.post(url, data=form, allow_redirects=False) as r:
                if r.status != 303 or "done=reply" not in r.headers.get("Location", ""):
                    raise RuntimeError(f"reply: {r.status} {r.headers.get('Location')}")
            post_ms.append((time.monotonic() - t) * 1000)

        posts = []
        for i in range(args.replies * 2):
            posts.append(asyncio.create_task(reply(i)))
            await asyncio.sleep(args.interval)
        await asyncio.gather(*posts)
    elapsed = time.monotonic() - started
    await asyncio.sleep(args.settle)
    cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - started) * 100
    widget_ms: list[float] = []
    for m in (await asyncio.to_thread(load.command, cmd="messages"))["messages"]:  # type: ignore[attr-defined]
        for marker, (channel, wall, _) in sent.items():
            if channel == "widget" and marker in m["text"]:
                widget_ms.append(m["at"] - wall * 1000)
    telegram_ms: list[float] = []
    for call in fake.calls_of("sendMessage"):
        text = str(call.params.get("text", ""))
        for marker, (channel, _, mono) in sent.items():
            if channel == "telegram" and marker in text:
                telegram_ms.append((call.at - mono) * 1000)
    wanted = {c: sum(1 for ch, _, _ in sent.values() if ch == c) for c in ("widget", "telegram")}
    rows = [
        [
            "console POST (stored, 303)",
            len(post_ms),
            len(sent),
            percentile(post_ms, 50),
            percentile(post_ms, 95),
            percentile(post_ms, 99),
        ],
        [
            "to a connected widget",
            len(widget_ms),
            wanted["widget"],
            percentile(widget_ms, 50),
            percentile(widget_ms, 95),
            percentile(widget_ms, 99),
        ],
        [
            "to the fake Bot API",
            len(telegram_ms),
            wanted["telegram"],
            percentile(telegram_ms, 50),
            percentile(telegram_ms, 95),
            percentile(telegram_ms, 99),
        ],
    ]
    print(
        f"\n{len(sent)} replies in {elapsed:.1f} s ({len(sent) / elapsed:.1f}/s); "
        f"service CPU {cpu:.0f} %; load avg {loadavg()}\n"
    )
    print(table(["path", "arrived", "sent", "p50 ms", "p95 ms", "p99 ms"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--widgets", type=int, default=10, help="widget visitors (W)")
    parser.add_argument("--telegrams", type=int, default=10, help="Telegram users (T)")
    parser.add_argument("--replies", type=int, default=50, help="replies per channel")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between replies")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait for the last")
    args = parser.parse_args()
    header(
        f"staff reply -> customer: {args.replies} replies each to {args.widgets} widget "
        f"and {args.telegrams} Telegram customers"
    )
    with tempfile.TemporaryDirectory(prefix="bench-reply-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
