"""kill -9 the service while it polls Telegram under load: no update is lost or applied twice.

    .venv/bin/python bench/faults/telegram_kill9.py --help

The service runs as a child process in long polling against the tests' fake Bot API
(tests/fake_telegram.py, in this process), which keeps every update until a getUpdates
offset confirms it, as Telegram does. U users go through the whole feedback dialogue at
once (about 10 updates each, each sent when the bot has answered the one before, always
answering the bot's latest question: bench/telegram_users.py). After --kill-after
seconds the service is killed (SIGKILL), stays down --down seconds, and is started
again on the same database; the users carry on. Checked afterwards: every user got
through and filed exactly one ticket, Telegram holds no unconfirmed update, and every
update is recorded as handled. How many updates were in hand (sent, not yet answered)
at the kill is printed: aiogram's own polling had confirmed those before handling
them, and they were lost.
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

from bench.telegram_users import Chats, User, queued, run_user_following
from tests.fake_telegram import FakeTelegram

DB_NAME = "faults"
FIRST_CHAT = 800_000


async def run(args: argparse.Namespace) -> bool:
    tmp = workdir("telegram-kill9")
    db = start_database(tmp)
    fake = FakeTelegram()
    await fake.start()
    env = {
        **telegram_service_env(db.uri, DB_NAME, fake.token, fake.base_url),
        "BOT_TELEGRAM_POLLING_TIMEOUT": "1",
        "BOT_TELEGRAM_FLOOD_MESSAGES": "100000",
        "BOT_TELEGRAM_MESSAGES_PER_SECOND": "100000",
        # How long the killed process's claims hold its updates after the restart.
        "BOT_TELEGRAM_UPDATE_CLAIM_SECONDS": str(args.claim_seconds),
        # A lease left by the killed process: the restarted one waits this long to poll.
        "BOT_TELEGRAM_POLLING_LEASE_SECONDS": "3",
    }
    service = ServiceProcess(tmp, env)
    mongo: MongoClient[dict[str, Any]] = MongoClient(db.uri)
    chats = Chats(fake)
    latencies: list[float] = []
    users = [
        User(
            fake,
            chats,
            FIRST_CHAT + i,
            queued,
            latencies,
            push=True,
            answer_timeout=args.give_up,
        )
        for i in range(args.users)
    ]
    try:
        service.start()
        await service.wait_healthy()
        await fake.wait_for("getUpdates", timeout=60)
        began = time.monotonic()
        dialogues = asyncio.gather(*(run_user_following(u) for u in users), return_exceptions=True)
        await asyncio.sleep(args.kill_after)
        answered_at_kill = len(latencies)
        unconfirmed_at_kill = len(fake.pending_updates)
        # Sent and not answered yet: each user has at most one update outstanding.
        in_hand_at_kill = sum(1 for u in users if u.chat in chats.waiting)
        service.kill9()
        killed_at = time.monotonic()
        await asyncio.sleep(args.down)
        service.start()
        healthy_after = await service.wait_healthy()
        results = await dialogues
        all_answered_after = time.monotonic() - killed_at
        elapsed = time.monotonic() - began

        failed = [r for r in results if isinstance(r, BaseException)]
        expected = len(fake._history)  # every update pushed
        customers = {
            d["_id"]: d["external_id"]
            for d in mongo[DB_NAME].customers.find({"channel": "telegram"})
        }
        tickets = Counter(d["customer_id"] for d in mongo[DB_NAME].tickets.find({}))
        one_ticket = sum(1 for c in customers if tickets.get(c) == 1)
        twice = sum(1 for c in customers if tickets.get(c, 0) > 1)
        events = mongo[DB_NAME].inbound_events
        prefix = f"^telegram:{fake.bot_id}:"
        handled = events.count_documents({"_id": {"$regex": prefix + r"\d+$"}, "until": None})
        # A claim of the dead process taken over leaves a marker (`<key>~<dead owner>`,
        # bot.storage.locks.claim_once) that retention deletes later.
        takeovers = events.count_documents({"_id": {"$regex": prefix + ".*~"}})
        # Answers beyond one per update: an update in hand at the kill may be answered
        # again after the restart (its input is applied once; the answer can repeat).
        sent = sum(1 for c in fake.calls_of("sendMessage") if not c.failed)
        pending_after = len(fake.pending_updates)
        ok = (
            not failed
            and one_ticket == args.users
            and twice == 0
            and pending_after == 0
            and handled == expected
        )
        table(
            f"kill -9 while polling Telegram ({args.users} users, killed after "
            f"{args.kill_after:.0f} s, down {args.down:.0f} s; logs in {tmp})",
            [
                (
                    "updates sent / answered",
                    f"{expected} / {len(latencies)}",
                    verdict(len(latencies) == expected),
                ),
                ("users that did not finish", len(failed), verdict(not failed)),
                ("answered before the kill", answered_at_kill, ""),
                ("in hand at the kill (sent, not answered)", in_hand_at_kill, ""),
                ("unconfirmed with Telegram at the kill", unconfirmed_at_kill, ""),
                (
                    "users with exactly one ticket",
                    f"{one_ticket}/{args.users}",
                    verdict(one_ticket == args.users),
                ),
                ("users with a ticket twice", twice, verdict(twice == 0)),
                (
                    "updates recorded as handled",
                    f"{handled}/{expected}",
                    verdict(handled == expected),
                ),
                ("claims of the dead process taken over", takeovers, ""),
                (
                    "unconfirmed with Telegram at the end",
                    pending_after,
                    verdict(pending_after == 0),
                ),
                ("answers sent (one per update expected)", sent, f"{sent - expected:+d}"),
                ("restart -> /healthz 200 (s)", f"{healthy_after:.1f}", ""),
                ("kill -> every update answered (s)", f"{all_answered_after:.1f}", ""),
                ("whole run (s)", f"{elapsed:.1f}", ""),
            ],
        )
        if failed:
            print(f"first failure: {failed[0]!r}")
        return ok
    finally:
        service.stop()
        mongo.close()
        await fake.stop()
        db.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--users", type=int, default=30, help="users at once (default 30)")
    parser.add_argument("--kill-after", type=float, default=1.5, help="seconds of load first")
    parser.add_argument("--down", type=float, default=2.0, help="seconds the service is down")
    parser.add_argument(
        "--claim-seconds",
        type=float,
        default=5.0,
        help="BOT_TELEGRAM_UPDATE_CLAIM_SECONDS (default 5; the service's default is 60)",
    )
    parser.add_argument("--give-up", type=float, default=180.0, help="wait for an answer (s)")
    args = parser.parse_args()
    exit_on_sigterm()
    return 0 if asyncio.run(run(args)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
