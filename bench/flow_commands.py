"""The database commands of each step of one feedback flow, as the dialogue sends them.

    .venv/bin/python bench/flow_commands.py              # ~15 seconds
    .venv/bin/python bench/flow_commands.py --commands   # and each command, in order

In this process (no socket, no Telegram middleware: the update's own claim and its
handled mark, two commands, come on top): a Container on a fresh embedded FerretDB, one
Telegram user through DialogueService from /start to submit, a PyMongo command listener
counting what each step sends. The filters are printed cut short and name no one (ids
are random or hashed).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from common import BENCH_DB, embedded_database, header, table
from pymongo import monitoring

from bot.app import Container
from bot.config import Settings
from bot.domain.flow import Command, Input
from bot.domain.models import Channel

FEEDBACK = [
    ("/start", Input.command(Command.START)),
    *((value, Input.choice(value)) for value in ("yes", "yes", "yes", "user_interface", "3")),
    ("text", Input.text("The checkout page froze twice.")),
    *((value, Input.choice(value)) for value in ("done", "skip", "submit")),
]
HANDSHAKES = {"hello", "isMaster", "ismaster", "endSessions", "ping", "buildInfo"}


class Recorder(monitoring.CommandListener):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in HANDSHAKES:
            return
        command: dict[str, Any] = dict(event.command)
        changes = command.get("updates") or command.get("deletes") or [{}]
        where = command.get("filter") or changes[0].get("q") or ""
        self.seen.append(f"{event.command_name} {command.get(event.command_name)} {where!s:.60}")

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def run(args: argparse.Namespace) -> None:
    recorder = Recorder()
    monitoring.register(recorder)
    with tempfile.TemporaryDirectory() as workdir, embedded_database(Path(workdir)) as db:
        settings = Settings(_env_file=None, mongodb_database=BENCH_DB)  # type: ignore[call-arg]
        container = Container.build(settings, db.uri)
        container.sqlite_dir = db.sqlite_dir  # prepared as the service prepares it
        await container.prepare_database()
        rows: list[list[object]] = []
        for n, (label, inp) in enumerate(FEEDBACK):
            recorder.seen.clear()
            await container.dialogue.handle(
                Channel.TELEGRAM, "777", inp, locale_hint="en", idempotency_key=f"bench:{n}"
            )
            await asyncio.sleep(0.3)  # what the step started in the background (delivery)
            rows.append([label, len(recorder.seen)])
            if args.commands:
                print(f"## {label}: {len(recorder.seen)} commands")
                for line in recorder.seen:
                    print(f"    {line}")
        rows.append(["all", sum(int(str(r[1])) for r in rows)])
        print(table(["step", "commands"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--commands", action="store_true", help="print each command too")
    args = parser.parse_args()
    header("database commands per step of one feedback flow")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
