"""Command line: `python -m bot --help`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

from bot.config import Settings


def _cmd_serve(settings: Settings, _: argparse.Namespace) -> int:
    from bot.app import serve

    asyncio.run(serve(settings))
    return 0


def _cmd_devdb(settings: Settings, args: argparse.Namespace) -> int:
    from bot.storage.embedded import EmbeddedDatabase, EmbeddedDatabaseError, ensure_binary

    try:
        if args.action == "build":
            print(ensure_binary(settings.cache_dir))
            return 0
        with EmbeddedDatabase.start(
            settings.cache_dir, settings.data_dir / "ferretdb", port=args.port
        ) as db:
            print(f"MONGODB_URI={db.uri}", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                db.process.wait()
    except EmbeddedDatabaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_chat(settings: Settings, args: argparse.Namespace) -> int:
    from bot.channels.terminal import run_chat

    return asyncio.run(run_chat(settings, user=args.user, locale=args.locale))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot", description="Customer-feedback bot backend."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the service (HTTP, channels, delivery)")
    serve.set_defaults(func=_cmd_serve)

    chat = sub.add_parser("chat", help="the feedback dialogue in this terminal, for developers")
    chat.add_argument("--user", default="dev", help="who you are on the terminal channel")
    chat.add_argument("--locale", default=None, help="zh_CN or en (default: BOT_DEFAULT_LOCALE)")
    chat.set_defaults(func=_cmd_chat)

    devdb = sub.add_parser("devdb", help="the embedded database (FerretDB) for development")
    devdb.add_argument(
        "action", choices=["build", "start"], help="build: compile it once; start: run it"
    )
    devdb.add_argument("--port", type=int, default=None, help="port for start (default: free)")
    devdb.set_defaults(func=_cmd_devdb)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    from bot.logs import configure

    configure(settings.log_level, settings.log_format)
    code: int = args.func(settings, args)
    return code


if __name__ == "__main__":
    sys.exit(main())
