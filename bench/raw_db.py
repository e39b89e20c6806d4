"""Raw database: what PyMongo's AsyncMongoClient gets from the embedded FerretDB (or
MONGODB_URI), so the service's rates can be read against its storage.

    .venv/bin/python bench/raw_db.py                    # fresh embedded FerretDB, ~1 minute
    .venv/bin/python bench/raw_db.py --concurrency 1,16 --seconds 5 --preload 20000
    MONGODB_URI=mongodb://127.0.0.1:27017/ .venv/bin/python bench/raw_db.py

Documents are shaped like the service's messages (an id, a customer id, a seq, a text,
an idempotency key, timestamps, a delivery sub-document), with the service's kind of
indexes. Operations, each for --seconds at each concurrency:
- insert_one;
- find_one by _id (indexed as the service prepares the embedded database, unless --bare);
- find_one_and_update by _id with $inc on a 500-document collection (a message number);
- find_one by an indexed field (idempotency_key), found, and not found: what every
  widget input does first, for a new client id;
- find_one by customer_id sorted by seq descending (the "latest seq" of a conversation).
`--preload` documents are inserted first (in batches) so that finds run on a collection of
a realistic size: FerretDB v1's SQLite backend pushes only some filters down to SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import cpu_seconds, embedded_database, header, loadavg, percentile, table
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel

from bot.storage.embedded import index_ids

CUSTOMERS = 500
RAW_DB = "bench_raw"


def document(n: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "_id": secrets.token_hex(12),
        "customer_id": f"c{n % CUSTOMERS}",
        "ticket_id": f"t{n % CUSTOMERS}",
        "seq": n,
        "author": "customer",
        "kind": "text",
        "text": "One more thing: the page froze again today.",
        "idempotency_key": f"widget:room:{n}:{secrets.token_hex(6)}",
        "created_at": now,
        "delivery": {"state": "sent", "attempts": 0, "next_at": now},
        "attachments": [],
    }


async def timed(
    work: Callable[[int], Awaitable[object]], concurrency: int, seconds: float, start: int
) -> tuple[int, list[float], float]:
    latencies: list[float] = []
    counter = start
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal counter
        while time.monotonic() < deadline:
            counter += 1
            t0 = time.perf_counter()
            await work(counter)
            latencies.append((time.perf_counter() - t0) * 1000)

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return counter, latencies, time.monotonic() - t0


async def run(
    uri: str, args: argparse.Namespace, db_pid: int | None, sqlite_dir: Path | None
) -> list[list[object]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    coll = client[RAW_DB]["messages"]
    counters = client[RAW_DB]["counters"]
    await coll.drop()
    await counters.drop()
    for index in (
        IndexModel([("idempotency_key", ASCENDING)], unique=True, name="idempotency_key"),
        IndexModel([("customer_id", ASCENDING), ("seq", DESCENDING)], name="customer_seq"),
    ):
        await coll.create_indexes([index])
    await counters.insert_many([{"_id": f"c{n}", "last": 0} for n in range(CUSTOMERS)])
    if sqlite_dir is not None and not args.bare:
        # As the service prepares the embedded database (bot.storage.embedded.index_ids).
        print(f"# _id indexes added: {index_ids(sqlite_dir, RAW_DB)}", flush=True)
    n = 0
    t0 = time.monotonic()
    known: list[str] = []  # _ids and keys from all over the collection, not just its start
    keys: list[str] = []
    while n < args.preload:
        batch = [document(i) for i in range(n, min(args.preload, n + 1000))]
        await coll.insert_many(batch, ordered=False)
        known += [d["_id"] for d in batch[::50]]
        keys += [d["idempotency_key"] for d in batch[::50]]
        n += len(batch)
    if args.preload:
        print(f"# preloaded {n:,} documents in {time.monotonic() - t0:.1f} s", flush=True)
    if not known:
        await coll.insert_one(first := document(0))
        known, keys = [first["_id"]], [first["idempotency_key"]]

    async def insert(i: int) -> object:
        return await coll.insert_one(document(i))

    async def by_id(i: int) -> object:
        return await coll.find_one({"_id": known[i % len(known)]})

    async def bump(i: int) -> object:
        # A message number (the service's message_sequences).
        return await counters.find_one_and_update(
            {"_id": f"c{i % CUSTOMERS}"}, {"$inc": {"last": 1}}, return_document=True
        )

    async def by_key(i: int) -> object:
        return await coll.find_one({"idempotency_key": keys[i % len(keys)]})

    async def miss(i: int) -> object:
        # A new client_id: what every widget input looks up first, and does not find.
        return await coll.find_one({"idempotency_key": f"widget:new:{i}"})

    async def latest(i: int) -> object:
        return await coll.find_one({"customer_id": f"c{i % CUSTOMERS}"}, sort=[("seq", DESCENDING)])

    ops = {
        "insert_one": insert,
        "find_one _id": by_id,
        "find_one_and_update _id $inc (500 docs)": bump,
        "find_one idempotency_key": by_key,
        "find_one idempotency_key, none": miss,
        "find_one customer_id sort seq": latest,
    }
    rows: list[list[object]] = []
    counter = 10_000_000
    for name, work in ops.items():
        for concurrency in args.concurrency:
            size = await coll.estimated_document_count()
            cpu0 = cpu_seconds(db_pid) if db_pid else 0.0
            counter, lat, elapsed = await timed(work, concurrency, args.seconds, counter)
            dbcpu = (cpu_seconds(db_pid) - cpu0) / elapsed * 100 if db_pid else None
            row: list[object] = [
                name,
                concurrency,
                size,
                len(lat) / elapsed,
                percentile(lat, 50),
                percentile(lat, 99),
                "-" if dbcpu is None else round(dbcpu),
                loadavg().split()[0],
            ]
            rows.append(row)
            print("# " + " | ".join(str(c) for c in row), flush=True)
    await client.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each step")
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 16],
        help="operations in flight, comma-separated",
    )
    parser.add_argument("--preload", type=int, default=10_000, help="documents inserted first")
    parser.add_argument(
        "--bare",
        action="store_true",
        help="FerretDB as it comes, without the _id indexes the service adds (index_ids)",
    )
    args = parser.parse_args()
    header(
        "raw database: PyMongo async against "
        + ("MONGODB_URI" if os.environ.get("MONGODB_URI") else "the embedded FerretDB")
    )
    headers = [
        "operation",
        "in flight",
        "docs",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "FerretDB CPU %",
        "load avg",
    ]
    uri = os.environ.get("MONGODB_URI")
    if uri:
        rows = asyncio.run(run(uri, args, None))
    else:
        with (
            tempfile.TemporaryDirectory(prefix="bench-db-") as tmp,
            embedded_database(Path(tmp)) as db,
        ):
            rows = asyncio.run(run(db.uri, args, db.pid, db.sqlite_dir))
    print()
    print(table(headers, rows))


if __name__ == "__main__":
    main()
