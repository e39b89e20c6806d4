"""`python -m bot privacy ...`: the retention job by hand (C4.3), and export or erasure
for customers' requests that arrive by phone or e-mail (C3.2.6).

Exit codes: 0 done, 1 error (nothing matched, several matched, not confirmed, busy),
2 usage (argparse). Customers are listed by channel and id only, never by contact
details; the requests are logged by "cli".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TextIO

from bot.app import Container, tool_container
from bot.config import Settings
from bot.domain.models import Customer
from bot.services.retention import RULES, RetentionReport
from bot.storage import CustomerErased
from bot.storage.locks import Busy

BY = "cli"
TERM_HELP = "a customer id, a ticket reference, an e-mail address or a phone number"


def run_privacy(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "retention":
        return asyncio.run(retention(settings, dry_run=args.dry_run))
    if args.action == "export":
        return asyncio.run(export(settings, term=args.customer, out=args.out))
    return asyncio.run(erase(settings, term=args.customer, yes=args.yes))


def _table(rows: list[tuple[str, str, str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for name, count, what in rows:
        out.write(f"{name:<{widths[0]}}  {count:>{widths[1]}}  {what}".rstrip() + "\n")


def print_report(report: RetentionReport, out: TextIO) -> None:
    heading = "would remove" if report.dry_run else "removed"
    rows = [("rule", heading, "")]
    rows += [(rule, str(report.counts.get(rule, 0)), what) for rule, what in RULES.items()]
    _table(rows, out)


async def retention(settings: Settings, *, dry_run: bool) -> int:
    async with tool_container(settings) as container:
        service = container.retention
        now = service.clock()
        report = await (service.run(now, dry_run=True) if dry_run else service.drain(now))
    if report.busy:
        sys.stderr.write("error: another process is running a retention round; try again\n")
        return 1
    print_report(report, sys.stdout)
    if report.failed:
        failed = ", ".join(report.failed)
        sys.stderr.write(f"error: these rules failed (see the log): {failed}\n")
        return 1
    return 0


async def _customer(container: Container, term: str) -> Customer | None:
    """The one customer `term` names; else None, with the reason on stderr."""
    found = await container.privacy.find_customers(term)
    if not found:
        sys.stderr.write(f"error: no customer matches; give {TERM_HELP}\n")
        return None
    if len(found) > 1:
        lines = "".join(f"  {c.channel.value}  {c.id}\n" for c in found)
        sys.stderr.write(f"error: {len(found)} customers match; give one customer id:\n{lines}")
        return None
    return found[0]


async def export(settings: Settings, *, term: str, out: Path | None) -> int:
    async with tool_container(settings) as container:
        customer = await _customer(container, term)
        if customer is None:
            return 1
        try:
            document = await container.privacy.export(customer, by=BY)
        except CustomerErased:
            sys.stderr.write("error: the customer was erased meanwhile\n")
            return 1
        data = container.privacy.export_bytes(document)
    if out is None:
        sys.stdout.buffer.write(data + b"\n")
        sys.stdout.flush()
        return 0
    # The file holds personal data: readable by its owner only.
    descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    sys.stderr.write(f"wrote the data of {customer.channel.value} customer {customer.id}\n")
    return 0


def _confirmed(customer: Customer) -> bool:
    sys.stderr.write(
        f"Erase all personal data of {customer.channel.value} customer {customer.id}? "
        "This cannot be undone. Type yes to go on: "
    )
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() == "yes"


async def erase(settings: Settings, *, term: str, yes: bool) -> int:
    async with tool_container(settings) as container:
        customer = await _customer(container, term)
        if customer is None:
            return 1
        if not yes and not await asyncio.to_thread(_confirmed, customer):
            sys.stderr.write("not erased\n")
            return 1
        try:
            report = await container.privacy.erase(customer, by=BY)
        except Busy:
            sys.stderr.write("error: this customer is being erased elsewhere; try again later\n")
            return 1
    rows = [("removed", "count", "")]
    rows += [(name, str(count), "") for name, count in sorted(report.removed.items())]
    _table(rows, sys.stdout)
    if report.pending:
        sys.stdout.write(
            f"{report.pending} staff topic(s) could not be deleted now; the retention job "
            "tries again\n"
        )
    return 0
