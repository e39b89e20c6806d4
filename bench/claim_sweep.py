"""What sweeping the dialogues' version claims costs, and whether writes wait for it.

    .venv/bin/python bench/claim_sweep.py                      # ~1 minute
    .venv/bin/python bench/claim_sweep.py --sizes 5000,20000

In this process: a fresh embedded FerretDB prepared as the service prepares it; the
`conversation_versions` collection filled to each size with claims that are all still
wanted (so the sweep reads them all and deletes none), and a replace of one document
every 5 ms meanwhile, as the dialogue's writes go on during a sweep.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from common import BENCH_DB, embedded_database, header, table

from bot.app import Container
from bot.config import Settings
from bot.domain.models import new_id, utcnow


async def writes(collection: Any, stop: asyncio.Event, waits: list[float]) -> None:
    """A replace every 5 ms until `stop`; how long each took, in `waits`."""
    while not stop.is_set():
        t0 = time.perf_counter()
        await collection.replace_one({"_id": "bench"}, {"v": t0})
        waits.append(time.perf_counter() - t0)
        await asyncio.sleep(0.005)


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as workdir, embedded_database(Path(workdir)) as db:
        settings = Settings(_env_file=None, mongodb_database=BENCH_DB)  # type: ignore[call-arg]
        container = Container.build(settings, db.uri)
        container.sqlite_dir = db.sqlite_dir
        await container.prepare_database()
        claims = container.repos.conversation_versions
        other = container.repos.conversations.collection
        await other.insert_one({"_id": "bench", "v": 0})
        rows: list[list[object]] = []
        stored = 0
        for size in args.sizes:
            until = utcnow() + timedelta(minutes=10)
            docs = [
                {"_id": f"{new_id()}@1", "owner": "o", "until": until} for _ in range(size - stored)
            ]
            for start in range(0, len(docs), 1000):
                await claims.collection.insert_many(docs[start : start + 1000])
            stored = size
            waits: list[float] = []
            stop = asyncio.Event()

            task = asyncio.create_task(writes(other, stop, waits))
            await asyncio.sleep(0.3)
            before = max(waits)
            waits.clear()
            t0 = time.perf_counter()
            deleted = await claims.sweep(utcnow())
            took = time.perf_counter() - t0
            await asyncio.sleep(0.05)
            stop.set()
            await task
            rows.append(
                [size, deleted, took * 1000, took * 1e6 / size, max(waits) * 1000, before * 1000]
            )
        print(
            table(
                [
                    "claims",
                    "deleted",
                    "sweep ms",
                    "us a claim",
                    "longest write during ms",
                    "longest write before ms",
                ],
                rows,
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[5000, 20000, 40000],
        help="claims in the collection, comma-separated, ascending",
    )
    args = parser.parse_args()
    header("sweeping dialogue version claims")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
