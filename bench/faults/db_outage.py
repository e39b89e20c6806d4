"""Stop the database for 30 s under widget load; the service must recover by itself.

    .venv/bin/python bench/faults/db_outage.py --help

Widget clients file a ticket each, then keep sending free text with client ids, resending
an input with the same id until it is acknowledged (as the widget does). Meanwhile the
database goes away:
- `--mode stop` (default): FerretDB is stopped, then started again on the same data
  directory and port (connections are refused meanwhile);
- `--mode freeze`: FerretDB gets SIGSTOP, then SIGCONT (connections hang meanwhile).
Checked: inputs sent during the outage get an error (`unavailable`) or no answer, never a
false "ok"; every acknowledged input is stored, none twice; /healthz says 503 during the
outage and 200 again after it, without a restart of the service.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from collections import Counter
from typing import Any

from common import (
    LOAD_ENV,
    ServiceProcess,
    WidgetClient,
    exit_on_sigterm,
    http_status,
    start_database,
    start_with_tickets,
    table,
    verdict,
    workdir,
)
from pymongo import MongoClient

DB_NAME = "faults"


async def load(
    client: WidgetClient,
    stop: asyncio.Event,
    texts: dict[str, str],
    give_up: float,
) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        client_id = f"db-{client.index}-{n:05d}"
        texts[client_id] = f"client {client.index} message {n} ({client_id})"
        await client.send(
            "text",
            texts[client_id],
            client_id=client_id,
            deadline=time.monotonic() + give_up,
            timeout=15.0,  # the widget's own acknowledgement timeout
        )
        await asyncio.sleep(0.5)


async def watch_health(
    url: str, stop: asyncio.Event, seen: list[tuple[float, float, int | None]]
) -> None:
    """(asked at, answered at, status) every half second."""
    while not stop.is_set():
        asked = time.monotonic()
        status = await asyncio.to_thread(http_status, url, 3.0)
        seen.append((asked, time.monotonic(), status))
        await asyncio.sleep(0.5)


async def run(args: argparse.Namespace) -> bool:  # noqa: PLR0915 - one scenario, top to bottom
    tmp = workdir("db-outage")
    db = start_database(tmp)
    env = {**LOAD_ENV, "MONGODB_URI": db.uri, "BOT_MONGODB_DATABASE": DB_NAME}
    service = ServiceProcess(tmp, env)
    clients = [WidgetClient(service.base, i) for i in range(args.clients)]
    try:
        await start_with_tickets(service, clients)
        print(f"{len(clients)} clients filed tickets; load {args.before}s, outage {args.outage}s")

        stop = asyncio.Event()
        texts: dict[str, str] = {}
        health: list[tuple[float, float, int | None]] = []
        give_up = args.outage + 120
        tasks = [asyncio.create_task(load(c, stop, texts, give_up)) for c in clients]
        watcher = asyncio.create_task(watch_health(service.base + "/healthz", stop, health))
        await asyncio.sleep(args.before)

        stopping_at = time.monotonic()
        if args.mode == "freeze":
            os.kill(db.process.pid, signal.SIGSTOP)
            down_at = time.monotonic()
            await asyncio.sleep(args.outage)
            restart_at = time.monotonic()
            os.kill(db.process.pid, signal.SIGCONT)
        else:
            port = db.port
            await asyncio.to_thread(db.stop)  # SIGTERM: FerretDB finishes what it has in hand
            down_at = time.monotonic()
            await asyncio.sleep(args.outage)
            restart_at = time.monotonic()
            db = await asyncio.to_thread(start_database, tmp, port)
        back_at = time.monotonic()
        await asyncio.sleep(args.after)
        stop.set()
        await asyncio.gather(*tasks)
        await watcher

        # Asked after the ping timeout (2 s) ran out in the outage, answered before it ended.
        during = [code for t0, t1, code in health if down_at + 3 < t0 and t1 < restart_at]
        first_200 = next((t1 for t0, t1, code in health if t0 > back_at and code == 200), None)
        first_ack = min(
            (t for c in clients for t, o in c.log if t > back_at and o == "acked"), default=None
        )
        attempts = [entry for c in clients for entry in c.log]
        # From a second in: an answer already on its way when the database went is not one.
        in_outage = Counter(o for t, o in attempts if down_at + 1 <= t <= restart_at)
        outcomes: Counter[str] = Counter()
        for c in clients:
            outcomes.update(c.outcomes)

        mongo: MongoClient[dict[str, Any]] = MongoClient(db.uri)
        messages = mongo[DB_NAME].messages
        acked = {cid for c in clients for cid in c.acked if cid.startswith("db-")}
        room_of = {c.index: c.room for c in clients}
        stored = duplicated = 0
        lost: list[str] = []
        for cid in acked:
            key = f"widget:{room_of[int(cid.split('-')[1])]}:{cid}"
            copies = messages.count_documents({"text": texts[cid]})
            if messages.count_documents({"idempotency_key": key}) == 1 and copies >= 1:
                stored += 1
            else:
                lost.append(cid)
            duplicated += max(0, copies - 1)
        mongo.close()
        unacked = len(texts) - len(acked)
        codes = Counter(str(c) for c in during)
        ok_during = bool(during) and all(c == 503 for c in during)
        recovered = first_200 is not None and first_ack is not None and service.alive()
        table(
            f"database {args.mode} for {args.outage:.0f} s under widget load "
            f"({len(clients)} clients, logs in {tmp})",
            [
                ("database stop took (s)", f"{down_at - stopping_at:.2f}", ""),
                ("inputs acknowledged", len(acked), ""),
                ("  stored in the database", stored, verdict(stored == len(acked))),
                ("  lost (acked, not stored)", len(lost), verdict(not lost)),
                ("  stored twice", duplicated, verdict(duplicated == 0)),
                ("inputs never acknowledged", unacked, "client gave up" if unacked else ""),
                ("answers during the outage", dict(in_outage), ""),
                # An input stored just before the database went is still answered "ok"
                # once its follow-up reads fail; it is in the "stored" count above.
                ("  'ok' among them (stored before)", in_outage.get("acked", 0), ""),
                ("all send outcomes", dict(outcomes), ""),
                ("/healthz during the outage", dict(codes), verdict(ok_during)),
                (
                    "db back -> /healthz 200 (s)",
                    "never" if first_200 is None else f"{first_200 - back_at:.2f}",
                    verdict(first_200 is not None),
                ),
                (
                    "db back -> first ack (s)",
                    "never" if first_ack is None else f"{first_ack - back_at:.2f}",
                    verdict(first_ack is not None),
                ),
                ("service restarted", service.starts - 1, verdict(service.starts == 1)),
                ("service alive at the end", service.alive(), verdict(recovered)),
            ],
        )
        return not lost and duplicated == 0 and ok_during and recovered and service.starts == 1
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        service.stop()
        db.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=10, help="widget clients (default 10)")
    parser.add_argument(
        "--mode", choices=["stop", "freeze"], default="stop", help="how the database goes away"
    )
    parser.add_argument("--outage", type=float, default=30.0, help="seconds without the database")
    parser.add_argument("--before", type=float, default=5.0, help="load before the outage (s)")
    parser.add_argument("--after", type=float, default=15.0, help="load after it (s)")
    args = parser.parse_args()
    exit_on_sigterm()
    return 0 if asyncio.run(run(args)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
