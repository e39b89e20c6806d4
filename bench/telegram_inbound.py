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
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from common import (
    TELEGRAM_SECRET,
    AsyncService,
    BenchDatabase,
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

from bot.config import Settings
from tests.fake_telegram import Call, FakeTelegram

BUTTONS_BEFORE_TEXT = ("yes", "yes", "yes", "logistics", "2")
BUTTONS_AFTER_TEXT = ("done", "skip", "submit")


class Chats:
    """What the fake Bot API sent each benchmark chat, followed as it is answered
    (FakeTelegram.answered) rather than searched for: with hundreds of users, searching
    the fake's list of calls over and over took more CPU than the service under test."""

    def __init__(self, fake: FakeTelegram) -> None:
        self.prompts: dict[int, Call] = {}  # the latest message with buttons, per chat
        self.waiting: dict[int, asyncio.Future[float]] = {}
        fake.answered.append(self.answered)

    def answered(self, call: Call) -> None:
        if call.method != "sendMessage":
            return
        chat = call.chat_id
        if call.params.get("reply_markup"):
            self.prompts[chat] = call
        waiter = self.waiting.pop(chat, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(call.at)

    def expect(self, chat: int) -> asyncio.Future[float]:
        """The time of the next message to `chat`, once it is sent."""
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[chat] = waiter
        return waiter

    def button(self, chat: int, value: str) -> tuple[str, int]:
        """The callback data of the button `value` on the latest prompt in the chat."""
        prompt = self.prompts[chat]
        for row in prompt.params["reply_markup"]["inline_keyboard"]:
            for b in row:
                kind, _, rest = b["callback_data"].partition(":")
                if (rest.partition(":")[2] if kind == "o" else rest) == value:
                    return b["callback_data"], prompt.result["message_id"]
        raise LookupError(f"no button {value!r} in chat {chat}")


class User:
    def __init__(
        self,
        fake: FakeTelegram,
        chats: Chats,
        chat: int,
        deliver: Any,
        latencies: list[float],
        *,
        push: bool,
    ) -> None:
        self.push = push  # polling: updates are queued for getUpdates as they are built
        self.fake = fake
        self.chats = chats
        self.chat = chat
        self.deliver = deliver
        self.latencies = latencies

    async def send(self, update: dict[str, Any]) -> None:
        answer = self.chats.expect(self.chat)
        t0 = time.monotonic()
        await self.deliver(update)
        try:
            at = await asyncio.wait_for(answer, 60)
        except TimeoutError:
            raise TimeoutError(f"chat {self.chat}: no answer in 60 s") from None
        self.latencies.append((at - t0) * 1000)


async def queued(update: dict[str, Any]) -> None:
    """Polling: building the update queued it for getUpdates; nothing more to do."""


async def run_mode(
    mode: str, work: Path, db: BenchDatabase, args: argparse.Namespace, base_chat: int
) -> list[object]:
    webhook = mode == "webhook"
    # A bot of its own per mode: update ids start again at 1 with each fake, and the
    # service would take the second mode's updates for redeliveries of the first's.
    async with FakeTelegram(token=f"{700_000 + base_chat // 100_000}:BENCH") as fake:
        env = telegram_env(fake.base_url, fake.token, webhook=webhook)
        env["BOT_TELEGRAM_POLLING_CONCURRENCY"] = str(args.polling_concurrency)
        env.update(args.env)
        async with AsyncService(work, db, **env) as svc, aiohttp.ClientSession() as http:
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
            commands0 = await asyncio.to_thread(scraped_command_totals, svc.base)
            cpu0, own0 = cpu_seconds(svc.pid), cpu_seconds(os.getpid())
            db0 = cpu_seconds(db.pid) if db.pid else 0.0
            t0 = time.monotonic()
            results = await asyncio.gather(*(run_user(u) for u in users), return_exceptions=True)
            elapsed = time.monotonic() - t0
            cpu = (cpu_seconds(svc.pid) - cpu0) / elapsed * 100
            own = (cpu_seconds(os.getpid()) - own0) / elapsed * 100
            dbcpu = (cpu_seconds(db.pid) - db0) / elapsed * 100 if db.pid else None
            commands1 = await asyncio.to_thread(scraped_command_totals, svc.base)
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                print(f"# {mode}: {len(failed)} users failed, first: {failed[0]!r}", flush=True)
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
    rows, commands, ms = command_table(commands0, commands1, max(1, len(latencies)))
    print(f"\n{mode}: {commands:.1f} database commands and {ms:.1f} ms of database time per update")
    print(table(["command", "collection", "per update", "ms per update", "ms each"], rows))
    return row


async def run_user(user: User) -> None:
    """One person through the dialogue: each update once the previous one is answered."""
    fake = user.fake

    def build(update_builder: Any, *a: Any, **kw: Any) -> dict[str, Any]:
        return update_builder(*a, push=user.push, **kw)  # type: ignore[no-any-return]

    chat = user.chat
    await user.send(build(fake.user_command, chat, "start"))
    for value in BUTTONS_BEFORE_TEXT:
        data, message_id = user.chats.button(chat, value)
        await user.send(build(fake.user_callback, chat, data, message_id=message_id))
    await user.send(build(fake.user_text, chat, "The parcel came two days late."))
    for value in BUTTONS_AFTER_TEXT:
        data, message_id = user.chats.button(chat, value)
        await user.send(build(fake.user_callback, chat, data, message_id=message_id))


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
        help="polling,webhook",
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
