"""What one widget text input costs in database commands, and how that grows with data.

    .venv/bin/python bench/input_profile.py                 # ~1 minute
    .venv/bin/python bench/input_profile.py --customers 200

In this process (no socket): a Container on a fresh embedded FerretDB, `--customers`
customers give feedback through DialogueService (as the widget does), then each sends
free text onto their open ticket, as WidgetNamespace.on_input does (the dialogue, which
stores the words once per idempotency key and says where the customer is for the ack).
The service's own timer of database commands (feedback_database_command_seconds) counts
every command and its time, per input, by command and collection.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from common import BENCH_DB, BenchDatabase, embedded_database, header, loadavg, table

from bot.app import Container
from bot.config import Settings
from bot.domain.flow import Command, Input
from bot.domain.models import Channel
from bot.metrics import Metrics


def command_totals(metrics: Metrics) -> dict[tuple[str, str], tuple[float, float]]:
    """(command, collection) -> (how many, seconds in all), from the service's own timer of
    every database command (bot.metrics.CommandTimer)."""
    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for metric in metrics.registry.collect():
        if metric.name != "feedback_database_command_seconds":
            continue
        for sample in metric.samples:
            key = (sample.labels["command"], sample.labels["collection"])
            if sample.name.endswith("_count"):
                totals[key][0] = sample.value
            elif sample.name.endswith("_sum"):
                totals[key][1] = sample.value
    return {k: (v[0], v[1]) for k, v in totals.items()}


FEEDBACK = [
    Input.command(Command.START),
    *(Input.choice(v) for v in ("yes", "yes", "yes", "user_interface", "3")),
    Input.text("The checkout page froze twice."),
    *(Input.choice(v) for v in ("done", "skip", "submit")),
]


async def run(db: BenchDatabase, args: argparse.Namespace) -> None:
    container = Container.build(Settings(_env_file=None, mongodb_database=BENCH_DB), db.uri)  # type: ignore[call-arg]
    container.sqlite_dir = db.sqlite_dir  # prepared as the service prepares it
    await container.prepare_database()
    dialogue = container.dialogue
    visitors = [f"visitor:{secrets.token_urlsafe(16)}" for _ in range(args.customers)]
    t0 = time.monotonic()
    for v in visitors:
        for inp in FEEDBACK:
            await dialogue.handle(Channel.WIDGET, v, inp, locale_hint="en")
    print(f"# {len(visitors)} customers gave feedback in {time.monotonic() - t0:.1f} s", flush=True)
    rows = []
    for round_ in range(args.rounds):
        before = command_totals(container.metrics)
        t0 = time.monotonic()
        for v in visitors[: args.sample]:
            key = f"widget:bench:{secrets.token_hex(8)}"
            inp = Input.text("One more thing: the page froze again today.")
            handled = await dialogue.handle_input(
                Channel.WIDGET, v, inp, locale_hint="en", idempotency_key=key
            )
            if handled.stored is None or not handled.stored.created:
                raise RuntimeError("the input was not stored as a new message")
            if handled.where is None:  # as on_input: the state only when not known yet
                await dialogue.current(Channel.WIDGET, v, "en")
        elapsed = time.monotonic() - t0
        after = command_totals(container.metrics)
        stats = {
            k: (count - before.get(k, (0.0, 0.0))[0], (secs - before.get(k, (0.0, 0.0))[1]) * 1000)
            for k, (count, secs) in after.items()
        }
        stats = {k: v for k, v in stats.items() if v[0]}
        n = args.sample
        total_cmds = sum(count for count, _ in stats.values())
        total_ms = sum(ms for _, ms in stats.values())
        docs = await container.database.db["messages"].estimated_document_count()
        print(
            f"# round {round_ + 1}: {n} inputs in {elapsed:.2f} s ({n / elapsed:.1f}/s, one at a "
            f"time); {total_cmds / n:.1f} commands and {total_ms / n:.1f} ms of database time "
            f"an input; messages collection: {docs:,} documents; load avg {loadavg()}",
            flush=True,
        )
        rows = [
            [cmd, coll, round(count / n, 2), round(ms / n, 2), round(ms / count, 2)]
            for (cmd, coll), (count, ms) in sorted(stats.items(), key=lambda kv: -kv[1][1])
        ]
        # Grow the data between rounds, as a busy service does.
        for v in visitors:
            for _ in range(args.grow):
                await dialogue.handle(
                    Channel.WIDGET,
                    v,
                    Input.text("More words for the ticket."),
                    locale_hint="en",
                    idempotency_key=f"widget:grow:{secrets.token_hex(8)}",
                )
    print()
    print(table(["command", "collection", "per input", "ms per input", "ms each"], rows))
    await container.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--sample", type=int, default=30, help="inputs measured per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--grow", type=int, default=5, help="messages per customer between rounds")
    args = parser.parse_args()
    header("one widget text input: database commands")
    with (
        tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp,
        embedded_database(Path(tmp)) as db,
    ):
        asyncio.run(run(db, args))


if __name__ == "__main__":
    main()
