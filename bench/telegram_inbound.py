"""Telegram inbound: updates through the whole feedback dialogue, via the fake Bot API
(tests/fake_telegram.py), in long-polling and in webhook mode.

    .venv/bin/python bench/telegram_inbound.py                 # ~1-2 minutes
    .venv/bin/python bench/telegram_inbound.py --users 100 --modes webhook

U users give feedback at the same time, each as a person does: /start, the consents,
category and rating buttons, the text, then done/skip/submit (10 updates), each sent when
the bot has answered the previous one. An update is "processed" when the bot's next
sendMessage to that chat reaches the fake Bot API (the next question, or the summary);
its latency is from handing the update over (queued for getUpdates, or POSTed to
/telegram/webhook) to that call. Updates/s = all updates / wall time of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from common import (
    TELEGRAM_SECRET,
    AsyncService,
    BenchDatabase,
    cpu_seconds,
    embedded_database,
    header,
    loadavg,
    percentile,
    table,
    telegram_env,
)

from tests.fake_telegram import FakeTelegram

BUTTONS_BEFORE_TEXT = ("yes", "yes", "yes", "logistics", "2")
BUTTONS_AFTER_TEXT = ("done", "skip", "submit")


def button(fake: FakeTelegram, chat: int, value: str) -> tuple[str, int]:
    """The callback data of the button `value` on the latest prompt in the chat."""
    prompts = [
        c
        for c in fake.calls_of("sendMessage")
        if c.chat_id == chat and not c.failed and c.params.get("reply_markup")
    ]
    prompt = prompts[-1]
    for row in prompt.params["reply_markup"]["inline_keyboard"]:
        for b in row:
            kind, _, rest = b["callback_data"].partition(":")
            if (rest.partition(":")[2] if kind == "o" else rest) == value:
                return b["callback_data"], prompt.result["message_id"]
    raise LookupError(f"no button {value!r} in chat {chat}")


class User:
    def __init__(
        self, fake: FakeTelegram, chat: int, deliver: Any, latencies: list[float], *, push: bool
    ) -> None:
        self.push = push  # polling: updates are queued for getUpdates as they are built
        self.fake = fake
        self.chat = chat
        self.deliver = deliver
        self.latencies = latencies

    async def send(self, update: dict[str, Any]) -> None:
        fake = self.fake
        start = len(fake.calls)
        t0 = time.monotonic()
        await self.deliver(update)
        deadline = t0 + 60
        while time.monotonic() < deadline:
            for call in fake.calls[start:]:
                if call.method == "sendMessage" and call.chat_id == self.chat and call.at >= t0:
                    self.latencies.append((call.at - t0) * 1000)
                    return
            start = max(start, len(fake.calls) - 50)  # other chats' calls keep coming
            await asyncio.sleep(0.002)
        raise TimeoutError(f"chat {self.chat}: no answer in 60 s")


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
        async with AsyncService(work, db, **env) as svc, aiohttp.ClientSession() as http:
            await fake.wait_for(lambda c: c.method in ("getUpdates", "setWebhook"), timeout=60)
            url = svc.base + "/telegram/webhook"
            headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}

            async def post(update: dict[str, Any]) -> None:
                async with http.post(url, json=update, headers=headers) as response:
                    if response.status != 200:
                        raise RuntimeError(f"webhook answered {response.status}")

            latencies: list[float] = []
            users = [
                User(fake, base_chat + i, post if webhook else queued, latencies, push=not webhook)
                for i in range(args.users)
            ]
            cpu0 = cpu_seconds(svc.pid)
            t0 = time.monotonic()
            results = await asyncio.gather(*(run_user(u) for u in users), return_exceptions=True)
            elapsed = time.monotonic() - t0
            cpu = (cpu_seconds(svc.pid) - cpu0) / elapsed * 100
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
        round(cpu),
        loadavg().split()[0],
    ]
    print("# " + " | ".join(str(c) for c in row), flush=True)
    return row


async def run_user(user: User) -> None:
    """One person through the dialogue: each update once the previous one is answered."""
    fake = user.fake

    def build(update_builder: Any, *a: Any, **kw: Any) -> dict[str, Any]:
        return update_builder(*a, push=user.push, **kw)  # type: ignore[no-any-return]

    chat = user.chat
    await user.send(build(fake.user_command, chat, "start"))
    for value in BUTTONS_BEFORE_TEXT:
        data, message_id = button(fake, chat, value)
        await user.send(build(fake.user_callback, chat, data, message_id=message_id))
    await user.send(build(fake.user_text, chat, "The parcel came two days late."))
    for value in BUTTONS_AFTER_TEXT:
        data, message_id = button(fake, chat, value)
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
                "service CPU %",
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
    args = parser.parse_args()
    header(f"telegram inbound: {args.users} users through the dialogue, modes {args.modes}")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
