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
from pathlib import Path

from common import (
    BENCH_DB,
    BenchDatabase,
    command_table,
    command_totals,
    embedded_database,
    header,
    loadavg,
    table,
)

from bot.app import Container
from bot.config import Settings
from bot.domain.flow import Command, Input
from bot.domain.models import Channel

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
        before = command_totals(container.metrics.registry.collect())
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
        after = command_totals(container.metrics.registry.collect())
        n = args.sample
        rows, commands, ms = command_table(before, after, n)
        docs = await container.database.db["messages"].estimated_document_count()
        print(
            f"# round {round_ + 1}: {n} inputs in {elapsed:.2f} s ({n / elapsed:.1f}/s, one at a "
            f"time); {commands:.1f} commands and {ms:.1f} ms of database time "
            f"an input; messages collection: {docs:,} documents; load avg {loadavg()}",
            flush=True,
        )
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
