"""Telegram inbound: updates through the whole feedback dialogue, via the fake Bot API
(tests/fake_telegram.py), in long-polling and in webhook mode.

    .venv/bin/python bench/telegram_inbound.py                 # ~1-2 minutes
    .venv/bin/python bench/telegram_inbound.py --users 100 --modes webhook

U users give feedback at the same time, each as a person does: /start, the consents,
category and rating buttons, the text, then done/skip/submit (10 updates), each sent when
the bot has answered the previous one. An update is "processed" when the bot's next
sendMessage to that chat reaches the fake Bot API (the next question, or the summary);
its latency is from handing the update over (queued for getUpdates, or for a POST to
/telegram/webhook, of which at most --webhook-connections are open at once, as Telegram
does) to that call. Updates/s = all updates / wall time of the run. After each mode, the
database commands the service sent per update (from its /metrics).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from common import (
    TELEGRAM_SECRET,
    AsyncService,
    BenchDatabase,
    Child,
    bare_telegram_bot,
    command_table,
    cpu_seconds,
    embedded_database,
    header,
    loadavg,
    percentile,
    scraped_command_totals,
    table,
    telegram_env,
)
from telegram_users import Chats, User, queued, run_user

from bot.config import Settings
from tests.fake_telegram import FakeTelegram


@contextlib.asynccontextmanager
async def target(
    fake: FakeTelegram, work: Path, db: BenchDatabase, args: argparse.Namespace, mode: str
) -> AsyncIterator[Child]:
    """The service, or (mode "bare-...") the bare aiogram bot, on the fake Bot API."""
    webhook = mode.endswith("webhook")
    if mode.startswith("bare"):
        cm = bare_telegram_bot(work, fake.base_url, fake.token, webhook=webhook)
        yield await asyncio.to_thread(cm.__enter__)
        await asyncio.to_thread(cm.__exit__, None, None, None)
        return
    env = telegram_env(fake.base_url, fake.token, webhook=webhook)
    env["BOT_TELEGRAM_POLLING_CONCURRENCY"] = str(args.polling_concurrency)
    env.update(args.env)
    async with AsyncService(work, db, **env) as svc:
        yield svc


async def run_mode(
    mode: str, work: Path, db: BenchDatabase, args: argparse.Namespace, base_chat: int
) -> list[object]:
    webhook = mode.endswith("webhook")
    bare = mode.startswith("bare")
    # A bot of its own per mode: update ids start again at 1 with each fake, and the
    # service would take the second mode's updates for redeliveries of the first's.
    token = f"{700_000 + base_chat // 100_000}:BENCH"
    async with (
        FakeTelegram(token=token) as fake,
        target(fake, work, db, args, mode) as svc,
        aiohttp.ClientSession() as http,
    ):
        await fake.wait_for(lambda c: c.method in ("getUpdates", "setWebhook"), timeout=60)
        url = svc.base + "/telegram/webhook"
        headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}

        # As Telegram does: at most `max_connections` requests at once (setWebhook's,
        # 40 unless set), the other updates wait their turn; an update the service
        # could not take (503: busy) is delivered again a little later.
        connections = asyncio.Semaphore(args.webhook_connections)

        async def post(update: dict[str, Any]) -> None:
            for attempt in range(10):
                async with (
                    connections,
                    http.post(url, json=update, headers=headers) as response,
                ):
                    if response.status == 200:
                        return
                    if response.status != 503:
                        raise RuntimeError(f"webhook answered {response.status}")
                redelivered[0] += 1
                await asyncio.sleep(min(10.0, 0.5 * 2**attempt))
            raise RuntimeError("webhook busy 10 times")

        latencies: list[float] = []
        redelivered = [0]
        chats = Chats(fake)
        deliver = post if webhook else queued
        users = [
            User(fake, chats, base_chat + i, deliver, latencies, push=not webhook)
            for i in range(args.users)
        ]
        scrape = dict if bare else (lambda: scraped_command_totals(svc.base))
        commands0 = await asyncio.to_thread(scrape)
        cpu0, own0 = cpu_seconds(svc.pid), cpu_seconds(os.getpid())
        db0 = cpu_seconds(db.pid) if db.pid else 0.0
        t0 = time.monotonic()
        results = await asyncio.gather(*(run_user(u) for u in users), return_exceptions=True)
        elapsed = time.monotonic() - t0
        cpu = (cpu_seconds(svc.pid) - cpu0) / elapsed * 100
        own = (cpu_seconds(os.getpid()) - own0) / elapsed * 100
        dbcpu = (cpu_seconds(db.pid) - db0) / elapsed * 100 if db.pid and not bare else None
        commands1 = await asyncio.to_thread(scrape)
        calls = Counter(c.method for c in fake.calls if c.method != "getUpdates")
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            print(f"# {mode}: {len(failed)} users failed, first: {failed[0]!r}", flush=True)
        if not webhook:
            # Updates in hand come back with every call until they are handled
            # (bot.channels.telegram.polling): what that costs in calls and parsing.
            polls = [c for c in fake.calls_of("getUpdates") if isinstance(c.result, list)]
            returned = sum(len(c.result) for c in polls)
            handled = max(1, len(latencies))
            print(
                f"# {mode}: {len(polls)} getUpdates calls ({len(polls) / handled:.2f} per "
                f"update), returning {returned} updates ({returned / handled:.1f} per "
                "update handled)",
                flush=True,
            )
    row: list[object] = [
        mode,
        args.users,
        len(latencies),
        round(elapsed, 1),
        len(latencies) / elapsed,
        percentile(latencies, 50),
        percentile(latencies, 99),
        len(failed),
        redelivered[0],
        round(cpu),
        "-" if dbcpu is None else round(dbcpu),
        round(own),
        loadavg().split()[0],
    ]
    print("# " + " | ".join(str(c) for c in row), flush=True)
    handled = max(1, len(latencies))
    per = ", ".join(f"{m} {n / handled:.2f}" for m, n in sorted(calls.items()))
    print(f"# {mode}: Bot API calls per update (other than getUpdates): {per}", flush=True)
    if bare:
        return row
    rows, commands, ms = command_table(commands0, commands1, max(1, len(latencies)))
    print(f"\n{mode}: {commands:.1f} database commands and {ms:.1f} ms of database time per update")
    print(table(["command", "collection", "per update", "ms per update", "ms each"], rows))
    return row


async def main_async(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-tg-") as tmp:
        work = Path(tmp)
        with embedded_database(work) as db:
            for n, mode in enumerate(args.modes):
                rows.append(await run_mode(mode, work, db, args, 10_000 + n * 100_000))
    print()
    print(
        table(
            [
                "mode",
                "users",
                "updates",
                "seconds",
                "updates/s",
                "p50 ms",
                "p99 ms",
                "failed users",
                "webhook 503s",
                "service CPU %",
                "FerretDB CPU %",
                "bench CPU % (fake Bot API, users)",
                "load avg",
            ],
            rows,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=30, help="users in the dialogue at once")
    parser.add_argument(
        "--modes",
        type=lambda s: s.split(","),
        default=["polling", "webhook"],
        help="polling,webhook; bare-polling,bare-webhook: the bare aiogram bot of "
        "bench/telegram_bare_bot.py (no database), the baseline to compare with",
    )
    parser.add_argument(
        "--polling-concurrency",
        type=int,
        default=Settings.model_fields["telegram_polling_concurrency"].default,
        help="BOT_TELEGRAM_POLLING_CONCURRENCY for the service (default: the service's)",
    )
    parser.add_argument(
        "--webhook-connections",
        type=int,
        default=40,
        help="webhook requests at once, as Telegram's setWebhook max_connections (default 40, "
        "Telegram's); the other updates wait their turn",
    )
    parser.add_argument(
        "--env",
        type=lambda s: tuple(s.split("=", 1)),
        action="append",
        default=[],
        metavar="BOT_SETTING=VALUE",
        help="another setting for the service (repeatable), e.g. BOT_MONGODB_WRITES_AT_ONCE=0",
    )
    args = parser.parse_args()
    header(f"telegram inbound: {args.users} users through the dialogue, modes {args.modes}")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
