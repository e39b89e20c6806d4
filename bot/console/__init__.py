"""The staff console (issue 6): where staff answer, decide and keep the deadlines.

`register_console(app, container)` adds, on the service's aiohttp app:
- sign-in, sessions, CSRF and security headers (bot.console.auth);
- the pages under /console (bot.console.pages) and their script and stylesheet
  under /console/static/;
- the socket.io namespace /staff on the widget's AsyncServer (one per process), fed
  by a ticket listener, so queues and ticket pages follow changes live.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from bot.assets import built_file
from bot.config import ROOT
from bot.console.analytics import register_analytics
from bot.console.auth import ConsoleAuth
from bot.console.live import StaffLive, StaffNamespace
from bot.console.pages import ConsolePages
from bot.console.privacy import register_privacy

if TYPE_CHECKING:
    from bot.app import Container

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/console/static"
# The script is built with the widget's (esbuild, socket.io-client from the npm lock).
SCRIPT_PATH = "/console/live.js"
BUNDLE = ROOT / "widget" / "dist" / "console.js"


async def script(request: web.Request) -> web.StreamResponse:
    return built_file(BUNDLE, "text/javascript", "no-cache")


async def script_map(request: web.Request) -> web.StreamResponse:
    return built_file(BUNDLE.with_name("console.js.map"), "application/json", "no-cache")


def register_console(app: web.Application, container: Container) -> None:
    ConsoleAuth(container).register(app)
    ConsolePages(container).register(app)
    register_privacy(app, container)
    register_analytics(app, container)
    app.router.add_static(STATIC_PATH, STATIC_DIR, append_version=False)
    app.router.add_get(SCRIPT_PATH, script)
    app.router.add_get(SCRIPT_PATH + ".map", script_map)
    sio = container.widget.sio
    sio.register_namespace(StaffNamespace())
    # One listener per container, even when a test builds two apps around it.
    if not any(isinstance(listener, StaffLive) for listener in container.tickets.listeners):
        container.tickets.listeners.append(StaffLive(sio))


__all__ = ["register_console"]
