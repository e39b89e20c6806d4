"""Memory knobs of python-socketio/engineio on aiohttp that bench/echo_server.py can turn,
to find what an idle connection costs (bench/idle_memory.py compares them)."""

from __future__ import annotations

import argparse
from typing import Any

from aiohttp.web import WebSocketResponse
from engineio.async_drivers import aiohttp as driver


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("memory knobs")
    group.add_argument(
        "--no-ws-compress",
        action="store_true",
        help="refuse permessage-deflate on the websocket (aiohttp compress=False)",
    )
    group.add_argument(
        "--ping-interval",
        type=float,
        default=25.0,
        help="engine.io ping interval, seconds (default 25, python-engineio's)",
    )
    group.add_argument(
        "--lean-environ",
        action="store_true",
        help="drop the aiohttp request from the environ kept per connection",
    )


def server_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"ping_interval": args.ping_interval}


def apply(args: argparse.Namespace) -> None:
    if args.no_ws_compress:
        disable_websocket_compression()


def disable_websocket_compression() -> None:
    """engineio's aiohttp driver makes `WebSocketResponse(max_msg_size=...)`, whose
    `compress=True` default accepts permessage-deflate: a zlib deflate and inflate
    state per connection once the client offers it (browsers and Node's `ws` do)."""

    async def call(self: Any, environ: dict[str, Any]) -> Any:
        request = environ["aiohttp.request"]
        self._sock = WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=False
        )
        await self._sock.prepare(request)
        self.environ = environ
        await self.handler(self)
        return self._sock

    driver.WebSocket.__call__ = call


def drop_request_references(environ: dict[str, Any]) -> None:
    environ.pop("aiohttp.request", None)
    environ.pop("wsgi.input", None)
