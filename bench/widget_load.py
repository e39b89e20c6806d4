"""Widget load: N socket.io sessions, M inputs/s in total, against the service and against
a bare python-socketio echo server (bench/echo_server.py) in the same run.

    .venv/bin/python bench/widget_load.py                 # defaults: about 2 minutes
    .venv/bin/python bench/widget_load.py --sessions 1000 --rates 100,300,600

What is measured. Every session first gives feedback through the whole flow (so it has an
open ticket); then each input is free text outside the flow, which the service stores as a
message of that ticket (with its idempotency key) before it acknowledges it: the ack's
`seq` proves it was stored (`unstored` counts acks without one). The round trip is from
sending `input` to its acknowledgement, measured by the Node client (bench/load.mjs); an
input answered `busy` (the service at BOT_INPUTS_IN_FLIGHT) is sent again as the widget
does, after 0.5 s, then 2 s doubling, and its round trip counts from its first send
(`sent again` counts them).
- saturation: closed loop, every session sends again as soon as it is acknowledged;
- open loop at each `--rates` value (M/s in total, round robin over the sessions); by
  default 50% and 80% of the service's saturation rate, and for the echo server the same
  rates plus the issue's 300/s.
CPU is the service's (and FerretDB's) user+system time over the step, from /proc, in % of
one core; RSS per connection is (RSS after connecting - before) / N.
The service runs with the widget's per-IP and per-connection rate limits lifted: every
client here comes from 127.0.0.1.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import (
    Child,
    NodeLoad,
    command_table,
    cpu_seconds,
    echo_server,
    embedded_database,
    header,
    loadavg,
    raise_nofile,
    rss_kib,
    scraped_command_totals,
    service,
    table,
)

from bot.config import Settings


def run_steps(
    name: str,
    server: Child,
    db_pid: int | None,
    args: argparse.Namespace,
    log: Path,
    rates: list[int],
) -> tuple[list[list[object]], list[list[object]], float]:
    """Connect, (service: give feedback), saturate, then the open-loop `rates` (filled in
    from the saturation when empty)."""
    rows: list[list[object]] = []
    with NodeLoad(server.base, log) as load:
        before = rss_kib(server.pid)
        opened = load.command(cmd="connect", n=args.sessions, waitState=db_pid is not None)
        time.sleep(1)
        after = rss_kib(server.pid)
        conn = [
            name,
            opened["connected"],
            opened["failed"],
            round(float(opened["seconds"]), 1),  # type: ignore[arg-type]
            before // 1024,
            after // 1024,
            round((after - before) / max(1, int(opened["connected"])), 1),  # type: ignore[arg-type]
        ]
        if db_pid is not None:
            prep = load.command(cmd="feedback", concurrency=args.prepare_concurrency)
            print(
                f"# {name}: {prep['done']} sessions gave feedback in {prep['seconds']:.1f} s "
                f"({prep['failed']} failed {prep['firstError'] or ''})",
                flush=True,
            )
        saturated = 0.0
        # Saturation first: the open-loop rates are then chosen below it (an open loop
        # above what the server can do only builds a queue that takes minutes to drain).
        steps: list[tuple[str, int]] = [("saturate", 0)]
        while steps:
            kind, rate = steps.pop(0)
            if kind == "rate" and rate > args.max_queue_factor * saturated:
                print(
                    f"# {name}: {rate}/s not attempted: saturation is {saturated:.0f}/s", flush=True
                )
                rows.append([name, f"{rate}/s open loop", "not attempted", *[""] * 9])
                continue
            cpu0 = cpu_seconds(server.pid)
            db0 = cpu_seconds(db_pid) if db_pid else 0.0
            commands0 = scraped_command_totals(server.base) if db_pid else {}
            t0 = time.monotonic()
            if kind == "rate":
                r = load.command(cmd="rate", rate=rate, seconds=args.seconds)
                label = f"{rate}/s open loop"
            else:
                # No more in flight than the service takes on at once: past that, the
                # sessions answered busy wait out the widget's retry delay, and the closed
                # loop would measure that delay instead of the service.
                closed = min(args.sessions, args.in_flight) if db_pid is not None else args.sessions
                r = load.command(cmd="saturate", seconds=args.seconds, connections=closed)
                label = f"saturation ({closed} in flight)"
                saturated = float(r["per_second"])  # type: ignore[arg-type]
                if not rates:
                    rates.extend(sorted({max(1, round(saturated * f)) for f in (0.5, 0.8)}))
                steps += [("rate", r) for r in rates]
            elapsed = time.monotonic() - t0
            cpu = (cpu_seconds(server.pid) - cpu0) / elapsed * 100
            dbcpu = (cpu_seconds(db_pid) - db0) / elapsed * 100 if db_pid else None
            row = [
                name,
                label,
                float(r["per_second"]),  # type: ignore[arg-type]
                float(r["p50"] or 0),  # type: ignore[arg-type]
                float(r["p95"] or 0),  # type: ignore[arg-type]
                float(r["p99"] or 0),  # type: ignore[arg-type]
                int(r["errors"]) + int(r.get("timeouts", 0)),  # type: ignore[call-overload]
                int(r["unstored"]),  # type: ignore[call-overload]
                int(r.get("retried", 0)),  # type: ignore[call-overload]
                round(cpu),
                "-" if dbcpu is None else round(dbcpu),
                loadavg().split()[0],
            ]
            rows.append(row)
            print("# " + " | ".join(str(c) for c in row), flush=True)
            if db_pid:  # what the service asked the database meanwhile, per input acked
                acked = max(1, round(float(r["per_second"]) * elapsed))  # type: ignore[arg-type]
                cmds, n, ms = command_table(commands0, scraped_command_totals(server.base), acked)
                print(f"# {n:.1f} commands and {ms:.1f} ms of database time per input acked")
                columns = ["command", "collection", "per input", "ms per input", "ms each"]
                print(table(columns, cmds))
        load.command(cmd="close")
    return [conn], rows, saturated


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=100, help="concurrent sessions (N)")
    parser.add_argument(
        "--rates",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[],
        help="open-loop rates, inputs/s in total (M), comma-separated; default: 50%% and "
        "80%% of the service's saturation, and for the echo server also these plus 300/s",
    )
    parser.add_argument(
        "--max-queue-factor",
        type=float,
        default=1.5,
        help="skip open-loop rates above this many times the saturation rate",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each step")
    parser.add_argument(
        "--prepare-concurrency", type=int, default=50, help="sessions giving feedback at once"
    )
    parser.add_argument("--skip-echo", action="store_true", help="only the service")
    parser.add_argument(
        "--in-flight",
        type=int,
        default=Settings.model_fields["inputs_in_flight"].default,
        help="BOT_INPUTS_IN_FLIGHT for the service (default: the service's default)",
    )
    args = parser.parse_args()
    raise_nofile()
    header(f"widget load: {args.sessions} sessions, {args.seconds:g} s a step")
    conns: list[list[object]] = []
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-widget-") as tmp:
        work = Path(tmp)
        env = {"BOT_INPUTS_IN_FLIGHT": str(args.in_flight)}
        with embedded_database(work) as db, service(work, db, **env) as ours:
            rates: list[int] = list(args.rates)
            c, r, ours_sat = run_steps("service", ours, db.pid, args, work / "load-ours.log", rates)
            conns += c
            rows += r
        echo_sat = 0.0
        if not args.skip_echo:
            with echo_server(work) as echo:
                echo_rates = sorted({*rates, 300})  # the same load, and the target rate
                c, r, echo_sat = run_steps(
                    "echo", echo, None, args, work / "load-echo.log", echo_rates
                )
                conns += c
                rows += r
    print()
    print(
        table(
            [
                "server",
                "connected",
                "failed",
                "connect s",
                "RSS before MiB",
                "RSS after MiB",
                "KiB/conn",
            ],
            conns,
        )
    )
    print()
    print(
        table(
            [
                "server",
                "load",
                "acked/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "errors",
                "unstored (echo: all)",
                "sent again (busy)",
                "server CPU %",
                "FerretDB CPU %",
                "load avg",
            ],
            rows,
        )
    )
    if echo_sat:
        print(
            f"\nsaturation: service {ours_sat:,.0f}/s, echo {echo_sat:,.0f}/s: "
            f"ratio {ours_sat / echo_sat:.2f} (target >= 0.5)"
        )


if __name__ == "__main__":
    main()
