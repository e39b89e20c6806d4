"""Command line: `python -m bot --help`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

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


MIN_PASSWORD = 12


def _read_password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        print("error: the passwords differ", file=sys.stderr)
        return None
    return first


def _cmd_staff(settings: Settings, args: argparse.Namespace) -> int:
    password = _read_password(args)
    if password is None:
        return 1
    if len(password) < MIN_PASSWORD:
        print(f"error: a password needs at least {MIN_PASSWORD} characters", file=sys.stderr)
        return 1
    from bot.console.accounts import add_staff

    added = asyncio.run(
        add_staff(
            settings,
            username=args.username,
            display_name=args.name or args.username,
            password=password,
            role=args.role,
            locale=args.locale,
        )
    )
    if not added:
        print(f"error: there is already a staff member called {args.username!r}", file=sys.stderr)
        return 1
    print(f"added {args.role} {args.username!r}")
    return 0


def _cmd_privacy(settings: Settings, args: argparse.Namespace) -> int:
    from bot.privacy_cli import run_privacy

    return run_privacy(settings, args)


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

    staff = sub.add_parser("staff", help="staff accounts of the console")
    staff_sub = staff.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = staff_sub.add_parser("add", help="add a staff member (the first one: --role admin)")
    add.add_argument("username")
    add.add_argument("--name", default=None, help="display name (default: the user name)")
    add.add_argument("--role", choices=["agent", "supervisor", "admin"], default="agent")
    add.add_argument("--locale", choices=["zh_CN", "en"], default=None)
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add.set_defaults(func=_cmd_staff)

    privacy = sub.add_parser(
        "privacy", help="retention now; export or erase a customer's data (phone, e-mail)"
    )
    privacy_sub = privacy.add_subparsers(dest="action", required=True, metavar="ACTION")
    retention = privacy_sub.add_parser(
        "retention", help="remove what the retention periods say is due (C4.3)"
    )
    retention.add_argument(
        "--dry-run", action="store_true", help="count what would be removed; change nothing"
    )
    customer_help = "customer id, ticket reference, e-mail or phone number"
    export = privacy_sub.add_parser("export", help="a customer's data as JSON (C3.2.6)")
    export.add_argument("--customer", required=True, metavar="TERM", help=customer_help)
    export.add_argument(
        "--out", type=Path, default=None, help="file to write (default: standard output)"
    )
    erase = privacy_sub.add_parser("erase", help="erase a customer's personal data (C3.2.6)")
    erase.add_argument("--customer", required=True, metavar="TERM", help=customer_help)
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    privacy.set_defaults(func=_cmd_privacy)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        # One line per problem, without pydantic's echo of the input: it holds the secrets.
        for problem in exc.errors(include_input=False, include_url=False):
            name = str(problem["loc"][0]) if problem["loc"] else ""
            field = Settings.model_fields.get(name)
            where = f"{field.validation_alias or 'BOT_' + name.upper()}: " if field else ""
            print(f"configuration: {where}{problem['msg']}", file=sys.stderr)
        return 2
    from bot.logs import configure

    configure(settings.log_level, settings.log_format)
    code: int = args.func(settings, args)
    return code


if __name__ == "__main__":
    sys.exit(main())
