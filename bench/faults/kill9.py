"""kill -9 a service process under widget load, then start it again.

    .venv/bin/python bench/faults/kill9.py --help

Widget clients (python-socketio, websockets) each file a ticket, then keep sending free
text with client ids, resending an unacknowledged input with the same id after a
reconnect, as the widget does. Staff replies to every ticket are queued from another
process (this script, through the service's own TicketService) right before the kill, so
they sit in the outbox when the service dies. The service is killed with SIGKILL and
started again on the same port. Checked afterwards, from the database:
- every acknowledged input is stored, and none twice (idempotency keys);
- every staff reply queued before the kill is sent after the restart and reached the widget.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from typing import Any

from common import (
    LOAD_ENV,
    ServiceProcess,
    WidgetClient,
    exit_on_sigterm,
    start_database,
    start_with_tickets,
    table,
    verdict,
    workdir,
)
from pymongo import MongoClient

from bot.app import Container
from bot.config import Settings

DB_NAME = "faults"


async def load(client: WidgetClient, stop: asyncio.Event, texts: dict[str, str], args: Any) -> None:
    """Free text until `stop`; the last input is still sent until acknowledged."""
    n = 0
    while not stop.is_set():
        n += 1
        client_id = f"k9-{client.index}-{n:05d}"
        texts[client_id] = f"client {client.index} message {n} ({client_id})"
        await client.send(
            "text", texts[client_id], client_id=client_id, deadline=time.monotonic() + args.give_up
        )
        await asyncio.sleep(args.interval)


async def queue_replies(uri: str, per_ticket: int) -> list[str]:
    """Staff replies to every ticket, queued by another process than the service."""
    settings = Settings(_env_file=None, MONGODB_URI=uri, mongodb_database=DB_NAME)
    container = Container.build(settings, uri)
    ids: list[str] = []
    try:
        tickets = [doc["_id"] async for doc in container.database.db.tickets.find({})]
        for n in range(per_ticket):
            for ticket_id in tickets:
                message = await container.tickets.staff_reply(
                    ticket_id, staff_id="bench-staff", text=f"staff reply {n + 1}"
                )
                ids.append(message.id)
    finally:
        await container.close()
    return ids


async def run(args: argparse.Namespace) -> bool:  # noqa: PLR0915 - one scenario, top to bottom
    tmp = workdir("kill9")
    db = start_database(tmp)
    env = {
        **LOAD_ENV,
        "MONGODB_URI": db.uri,
        "BOT_MONGODB_DATABASE": DB_NAME,
        # Another process's enqueue does not wake this one's dispatcher: it finds the
        # replies at its next poll, so they are still in the outbox at the kill.
        "BOT_DELIVERY_POLL_SECONDS": str(args.poll),
        "BOT_DELIVERY_LEASE_SECONDS": str(args.lease),
    }
    service = ServiceProcess(tmp, env)
    mongo: MongoClient[dict[str, Any]] = MongoClient(db.uri, tz_aware=True)
    messages = mongo[DB_NAME].messages
    clients = [WidgetClient(service.base, i) for i in range(args.clients)]
    try:
        await start_with_tickets(service, clients)
        print(f"{len(clients)} clients filed their tickets; load for {args.before}s, then kill -9")

        stop = asyncio.Event()
        texts: dict[str, str] = {}
        loads = [asyncio.create_task(load(c, stop, texts, args)) for c in clients]
        await asyncio.sleep(args.before)
        reply_ids = await queue_replies(db.uri, args.replies)
        service.kill9()
        killed_at = time.monotonic()
        pending_at_kill = messages.count_documents(
            {"_id": {"$in": reply_ids}, "delivery.state": "pending"}
        )
        acked_at_kill = sum(cid.startswith("k9-") for c in clients for cid in c.acked)
        await asyncio.sleep(args.down)
        service.start()
        restarted_at = time.monotonic()
        to_health = await service.wait_healthy()
        await asyncio.sleep(args.after)
        stop.set()
        await asyncio.gather(*loads)

        sent_after: float | None = None
        while time.monotonic() - restarted_at < args.give_up:
            left = messages.count_documents(
                {"_id": {"$in": reply_ids}, "delivery.state": "pending"}
            )
            if left == 0:
                sent_after = time.monotonic() - restarted_at
                break
            await asyncio.sleep(0.2)
        states = Counter(d["delivery"]["state"] for d in messages.find({"_id": {"$in": reply_ids}}))
        reply_seqs = {
            d["_id"]: (d["customer_id"], d["seq"])
            for d in messages.find({"_id": {"$in": reply_ids}})
        }
        customers = {
            c.index: mongo[DB_NAME].customers.find_one(
                {"channel": "widget", "external_id": c.external_id}
            )
            for c in clients
        }
        by_customer = {doc["_id"]: c for c in clients if (doc := customers[c.index])}
        # A push may still be on its way, or the replay after the reconnect.
        seen_deadline = time.monotonic() + 15
        while True:
            unseen = [
                mid for mid, (cust, seq) in reply_seqs.items() if seq not in by_customer[cust].seen
            ]
            if not unseen or time.monotonic() > seen_deadline:
                break
            await asyncio.sleep(0.2)

        acked = {cid: seq for c in clients for cid, seq in c.acked.items() if cid.startswith("k9-")}
        room_of = {f"k9-{c.index}-": c.room for c in clients}
        stored = 0
        lost: list[str] = []
        duplicated = 0
        for cid in acked:
            room = room_of[cid[: cid.rindex("-") + 1]]
            key = f"widget:{room}:{cid}"
            copies = messages.count_documents({"text": texts[cid]})
            if messages.count_documents({"idempotency_key": key}) == 1 and copies >= 1:
                stored += 1
            else:
                lost.append(cid)
            duplicated += max(0, copies - 1)
        unacked = [cid for cid in texts if cid not in acked]
        outcomes: Counter[str] = Counter()
        for c in clients:
            outcomes.update(c.outcomes)
        ok = not lost and not duplicated and states.get("pending", 0) == 0 and not unseen
        ok = ok and states.get("sent", 0) == len(reply_ids)
        table(
            f"kill -9 under widget load ({len(clients)} clients, logs in {tmp})",
            [
                ("inputs acknowledged", len(acked), ""),
                ("  of them before the kill", acked_at_kill, ""),
                ("  stored in the database", stored, verdict(stored == len(acked))),
                ("  lost (acked, not stored)", len(lost), verdict(not lost)),
                ("  stored twice", duplicated, verdict(duplicated == 0)),
                ("inputs never acknowledged", len(unacked), "client gave up" if unacked else ""),
                ("send outcomes", dict(outcomes), ""),
                ("staff replies queued", len(reply_ids), ""),
                ("  pending at the kill", pending_at_kill, verdict(pending_at_kill > 0)),
                ("  sent after the restart", states.get("sent", 0), verdict(ok)),
                ("  not seen by the widget", len(unseen), verdict(not unseen)),
                ("restart -> /healthz 200 (s)", f"{to_health:.2f}", ""),
                (
                    "restart -> outbox empty (s)",
                    "never" if sent_after is None else f"{sent_after:.2f}",
                    verdict(sent_after is not None),
                ),
                ("kill -> restart (s)", f"{restarted_at - killed_at:.2f}", ""),
                ("service alive at the end", service.alive(), verdict(service.alive())),
            ],
        )
        return ok
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        service.stop()
        mongo.close()
        db.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=10, help="widget clients (default 10)")
    parser.add_argument(
        "--interval", type=float, default=0.5, help="pause between a client's inputs (s)"
    )
    parser.add_argument("--before", type=float, default=5.0, help="load before the kill (s)")
    parser.add_argument("--down", type=float, default=2.0, help="time the service stays dead (s)")
    parser.add_argument("--after", type=float, default=5.0, help="load after the restart (s)")
    parser.add_argument(
        "--replies",
        type=int,
        default=3,
        help="staff replies per ticket, queued just before the kill",
    )
    parser.add_argument(
        "--poll", type=float, default=2.0, help="BOT_DELIVERY_POLL_SECONDS of the service"
    )
    parser.add_argument(
        "--lease", type=float, default=10.0, help="BOT_DELIVERY_LEASE_SECONDS of the service"
    )
    parser.add_argument(
        "--give-up", type=float, default=90.0, help="how long a client resends one input (s)"
    )
    args = parser.parse_args()
    exit_on_sigterm()
    return 0 if asyncio.run(run(args)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
