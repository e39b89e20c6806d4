"""A bare python-socketio server on aiohttp: the baseline the widget benchmarks compare with.

Namespace /widget, like the service's; an `input` event is acknowledged at once with an
ack shaped like the service's, nothing stored. No rate limits, no database.

    .venv/bin/python bench/echo_server.py --port 8099
    .venv/bin/python bench/echo_server.py --port 8099 --tracemalloc 25   # + GET /debug/memory

`--tracemalloc N` starts tracemalloc with N frames and serves GET /debug/memory?top=K:
the K biggest allocation sites (by line, and by the frame outside asyncio/aiohttp/engineio
that caused them), to find what an idle connection costs.
"""

from __future__ import annotations

import argparse
import gc
import linecache
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tuning

snapshots: dict[str, tracemalloc.Snapshot] = {}


def build(args: argparse.Namespace) -> web.Application:
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        cors_allowed_origins="*",
        logger=False,
        engineio_logger=False,
        **tuning.server_options(args),
    )

    @sio.on("connect", namespace="/widget")
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        if args.lean_environ:
            tuning.drop_request_references(environ)

    @sio.on("input", namespace="/widget")
    async def on_input(sid: str, data: Any) -> dict[str, Any]:
        return {"ok": True, "seq": None, "replies": [], "prompt": None}

    app = web.Application()
    sio.attach(app)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "connections": len(sio.eio.sockets)})

    async def memory(request: web.Request) -> web.Response:
        """tracemalloc: the top allocation sites now, and the growth since `?base=<name>`."""
        if not tracemalloc.is_tracing():
            return web.json_response({"error": "start with --tracemalloc N"}, status=400)
        gc.collect()
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        name = request.query.get("save")
        if name:
            snapshots[name] = snap
        top = int(request.query.get("top", "25"))
        base = snapshots.get(request.query.get("base", ""))
        body: dict[str, Any] = {"traced_kib": tracemalloc.get_traced_memory()[0] // 1024}
        if base is not None:
            body["growth_by_line"] = [
                _stat(s.traceback, s.size_diff, s.count_diff)
                for s in snap.compare_to(base, "lineno")[:top]
            ]
            body["growth_by_traceback"] = [
                _stat(s.traceback, s.size_diff, s.count_diff, frames=args.tracemalloc)
                for s in snap.compare_to(base, "traceback")[:top]
            ]
        return web.json_response(body)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/debug/memory", memory)
    return app


def _stat(tb: tracemalloc.Traceback, size: int, count: int, frames: int = 1) -> dict[str, Any]:
    where = []
    for frame in list(tb)[-frames:][::-1] if frames > 1 else [tb[0]]:
        short = frame.filename.split("site-packages/")[-1].split("lib/python3.11/")[-1]
        code = linecache.getline(frame.filename, frame.lineno).strip()
        where.append(f"{short}:{frame.lineno} {code}")
    return {"kib": round(size / 1024, 1), "count": count, "where": where}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="FRAMES",
        help="trace allocations with this many frames (0: off)",
    )
    tuning.add_arguments(parser)
    args = parser.parse_args()
    if args.tracemalloc:
        tracemalloc.start(args.tracemalloc)
    tuning.apply(args)
    web.run_app(build(args), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
