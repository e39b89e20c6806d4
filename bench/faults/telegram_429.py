"""Telegram answers 429 Too Many Requests for a minute: everything arrives afterwards, in order.

    .venv/bin/python bench/faults/telegram_429.py --help

The service runs as a child process against the tests' fake Bot API (tests/fake_telegram.py,
in this process). Telegram customers file a ticket each (the acknowledgement goes to the
outbox), then staff replies are queued throughout the storm from this process. For
`--storm` seconds every sendMessage is answered 429 with `retry_after`. Checked afterwards:
every outbound message is sent, none is undeliverable, and the texts each chat received are
exactly its outbound messages in their order (no gap, no repeat).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from typing import Any

from common import (
    ServiceProcess,
    exit_on_sigterm,
    start_database,
    table,
    telegram_service_env,
    verdict,
    workdir,
)
from pymongo import MongoClient

from bot.app import Container
from bot.config import Settings
from bot.domain.flow import Command, Input
from bot.domain.models import Channel
from tests.fake_telegram import FakeTelegram

DB_NAME = "faults"
FIRST_CHAT = 700_000


async def file_tickets(container: Container, chats: list[int]) -> None:
    """Each chat goes through the dialogue (this process's services): one ticket each."""
    steps = [Input.command(Command.START)]
    steps += [Input.choice(v) for v in ("yes", "yes", "yes", "user_interface", "3")]
    steps += [Input.text("The app logs me out every morning.")]
    steps += [Input.choice(v) for v in ("done", "skip", "submit")]

    async def one(chat: int) -> None:
        for step in steps:
            await container.dialogue.handle(Channel.TELEGRAM, str(chat), step, locale_hint="en")

    await asyncio.gather(*(one(chat) for chat in chats))


async def run(args: argparse.Namespace) -> bool:  # noqa: PLR0915 - one scenario, top to bottom
    tmp = workdir("telegram-429")
    db = start_database(tmp)
    fake = FakeTelegram()
    await fake.start()
    env = telegram_service_env(db.uri, DB_NAME, fake.token, fake.base_url)
    service = ServiceProcess(tmp, env)
    settings = Settings(_env_file=None, MONGODB_URI=db.uri, mongodb_database=DB_NAME)
    container = Container.build(settings, db.uri)  # no dispatcher runs here: it only queues
    mongo: MongoClient[dict[str, Any]] = MongoClient(db.uri)
    messages = mongo[DB_NAME].messages
    chats = [FIRST_CHAT + i for i in range(args.chats)]
    try:
        service.start()
        await service.wait_healthy()
        await container.repos.ensure_indexes()
        # The storm starts before the first acknowledgement goes out.
        fake.fail_next("sendMessage", error_code=429, retry_after=args.retry_after, times=10**9)
        storm_began = time.monotonic()
        await file_tickets(container, chats)
        tickets = [doc["_id"] async for doc in container.database.db.tickets.find({})]
        print(f"{len(tickets)} tickets filed; 429 for {args.storm:.0f} s, replies queued meanwhile")
        for n in range(args.replies):
            for ticket_id in tickets:
                await container.tickets.staff_reply(
                    ticket_id, staff_id="bench-staff", text=f"reply {n + 1} of {args.replies}"
                )
            await asyncio.sleep(args.storm / args.replies / 2)
        await asyncio.sleep(max(0.0, args.storm - (time.monotonic() - storm_began)))
        refused = sum(1 for c in fake.calls_of("sendMessage") if c.failed)
        fake._faults.clear()
        storm_ended = time.monotonic()

        outbound = {"direction": "out", "channel": "telegram"}
        total = messages.count_documents(outbound)
        done_after: float | None = None
        while time.monotonic() - storm_ended < args.give_up:
            if messages.count_documents({**outbound, "delivery.state": "pending"}) == 0:
                done_after = time.monotonic() - storm_ended
                break
            await asyncio.sleep(0.2)
        states = Counter(d["delivery"]["state"] for d in messages.find(outbound))
        attempts = max((d["delivery"]["attempts"] for d in messages.find(outbound)), default=0)

        customers = {
            d["_id"]: int(d["external_id"])
            for d in mongo[DB_NAME].customers.find({"channel": "telegram"})
        }
        in_order = 0
        wrong: list[int] = []
        for customer_id, chat in customers.items():
            expected = [
                d["text"]
                for d in messages.find({**outbound, "customer_id": customer_id}).sort("seq", 1)
            ]
            # Long texts go out in several parts; compare the concatenation in order.
            if "".join(fake.sent_texts(chat)) == "".join(expected):
                in_order += 1
            else:
                wrong.append(chat)
        ok = done_after is not None and not wrong and states.get("undeliverable", 0) == 0
        table(
            f"Telegram 429 for {args.storm:.0f} s (retry_after {args.retry_after} s, "
            f"{len(chats)} chats, logs in {tmp})",
            [
                ("outbound messages", total, ""),
                ("sendMessage answered 429", refused, verdict(refused > 0)),
                ("sent afterwards", states.get("sent", 0), verdict(states.get("sent", 0) == total)),
                (
                    "undeliverable",
                    states.get("undeliverable", 0),
                    verdict(not states.get("undeliverable")),
                ),
                (
                    "chats with every message, in order",
                    f"{in_order}/{len(customers)}",
                    verdict(not wrong),
                ),
                ("most attempts of one message", attempts, "429s do not count"),
                (
                    "storm over -> all sent (s)",
                    "never" if done_after is None else f"{done_after:.2f}",
                    verdict(done_after is not None),
                ),
                ("service alive at the end", service.alive(), verdict(service.alive())),
            ],
        )
        return ok and service.alive()
    finally:
        service.stop()
        await container.close()
        mongo.close()
        await fake.stop()
        db.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--chats", type=int, default=10, help="Telegram customers (default 10)")
    parser.add_argument("--replies", type=int, default=3, help="staff replies per ticket")
    parser.add_argument("--storm", type=float, default=60.0, help="seconds of 429 answers")
    parser.add_argument("--retry-after", type=int, default=5, help="retry_after in the 429s")
    parser.add_argument("--give-up", type=float, default=120.0, help="wait for delivery (s)")
    args = parser.parse_args()
    exit_on_sigterm()
    return 0 if asyncio.run(run(args)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
