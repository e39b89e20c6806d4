"""Idle memory: resident memory per idle widget connection, the service against the bare
python-socketio server (bench/echo_server.py) in the same run; then where the bare server's
per-connection memory goes.

    .venv/bin/python bench/idle_memory.py                     # 5,000 connections, ~1.5 minutes
    .venv/bin/python bench/idle_memory.py --connections 2000 --skip-study

Part 1. For each server: RSS (VmRSS from /proc) before and after N idle websocket
connections (Node socket.io-client, bench/load.mjs; for the service each connection is
a widget visitor that got its `history`/`state` welcome), divided by N. The servers:
- `echo`: the bare python-socketio server, defaults (what the issue's 120 KiB is about);
- `echo --no-ws-compress`: the same, refusing the permessage-deflate extension;
- `service`: `python -m bot serve` on the embedded FerretDB.
Part 2 (the study). The bare server with tracemalloc: snapshots at N1 and N2 connections,
the growth by allocation site per connection. tracemalloc sees only Python's allocator,
so the study also prints the RSS growth it does not explain (C allocations such as zlib's).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    Child,
    NodeLoad,
    echo_server,
    embedded_database,
    header,
    http_get,
    loadavg,
    raise_nofile,
    rss_kib,
    service,
    table,
)


def settle(pid: int, seconds: float = 3.0) -> int:
    """RSS once it stops moving (the last welcomes and handshakes are done)."""
    time.sleep(1.0)
    last = rss_kib(pid)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = rss_kib(pid)
        if abs(now - last) < 256:
            return now
        last = now
    return last


def measure(name: str, server: Child, n: int, wait_state: bool, log: Path) -> list[object]:
    with NodeLoad(server.base, log) as load:
        before = settle(server.pid)
        opened = load.command(cmd="connect", n=n, waitState=wait_state, concurrency=100)
        after = settle(server.pid)
        connected = int(opened["connected"])  # type: ignore[call-overload]
        row: list[object] = [
            name,
            connected,
            int(opened["failed"]),  # type: ignore[call-overload]
            round(before / 1024, 1),
            round(after / 1024, 1),
            round((after - before) / max(1, connected), 1),
            loadavg().split()[0],
        ]
        print("# " + " | ".join(str(c) for c in row), flush=True)
        load.command(cmd="close")
    return row


def study(work: Path, n1: int, n2: int, frames: int, top: int) -> None:
    with (
        echo_server(work, "--tracemalloc", str(frames)) as echo,
        NodeLoad(echo.base, work / "study.log") as load,
    ):
        load.command(cmd="connect", n=n1, waitState=False, concurrency=100)
        rss1 = settle(echo.pid)
        http_get(echo.base + "/debug/memory?save=a", timeout=120)
        load.command(cmd="connect", n=n2 - n1, waitState=False, concurrency=100)
        rss2 = settle(echo.pid)
        _, body = http_get(echo.base + f"/debug/memory?base=a&top={top}", timeout=120)
        load.command(cmd="close")
    data: dict[str, Any] = json.loads(body)
    added = n2 - n1
    traced = sum(s["kib"] for s in data["growth_by_line"])
    print(f"\n## What {added:,} more idle connections cost the bare server ({n1:,} -> {n2:,})")
    print(
        f"RSS grew {(rss2 - rss1) / added:.1f} KiB a connection (tracemalloc running, which "
        f"adds its own overhead); the top {top} Python allocation sites explain "
        f"{traced * 1024 / added / 1024:.1f} KiB of it.\n"
    )
    rows = [
        [round(s["kib"] * 1024 / added), round(s["count"] / added, 1), s["where"][0][:110]]
        for s in data["growth_by_line"]
    ]
    print(table(["bytes/conn", "blocks/conn", "allocated at"], rows))
    print("\nBy call path (the innermost frame outside the allocator first):")
    for s in data["growth_by_traceback"][: min(8, top)]:
        print(f"- {s['kib'] * 1024 / added:,.0f} bytes/conn:")
        for frame in s["where"][:6]:
            print(f"    {frame[:120]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=5000, help="idle connections (N)")
    parser.add_argument("--skip-service", action="store_true", help="only the bare servers")
    parser.add_argument("--skip-study", action="store_true", help="no tracemalloc study")
    parser.add_argument("--study", default="1000,2000", help="N1,N2 of the tracemalloc study")
    parser.add_argument("--frames", type=int, default=12, help="tracemalloc frames kept")
    parser.add_argument("--top", type=int, default=15, help="allocation sites listed")
    args = parser.parse_args()
    print(f"# open files limit: {raise_nofile()}")
    header(f"idle memory: {args.connections:,} idle websocket connections per server")
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        work = Path(tmp)
        with echo_server(work) as echo:
            rows.append(measure("echo", echo, args.connections, False, work / "a.log"))
        with echo_server(work, "--no-ws-compress") as echo:
            rows.append(
                measure("echo --no-ws-compress", echo, args.connections, False, work / "b.log")
            )
        if not args.skip_service:
            with embedded_database(work) as db, service(work, db) as ours:
                rows.append(measure("service", ours, args.connections, True, work / "c.log"))
        print()
        print(
            table(
                [
                    "server",
                    "connected",
                    "failed",
                    "RSS before MiB",
                    "RSS after MiB",
                    "KiB/conn",
                    "load avg",
                ],
                rows,
            )
        )
        if not args.skip_service:
            ratio = float(rows[-1][5]) / float(rows[0][5])  # type: ignore[arg-type]
            print(f"\nservice / bare echo per connection: {ratio:.2f} (target <= 1.5)")
        if not args.skip_study:
            n1, n2 = (int(x) for x in args.study.split(","))
            study(work, n1, n2, args.frames, args.top)


if __name__ == "__main__":
    main()
