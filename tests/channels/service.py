"""The whole service (the real aiohttp app and its background tasks) on a free port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from bot.app import Container, build_app
from bot.config import Settings


@dataclass
class Service:
    container: Container
    url: str


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Service]:
    assert settings.mongodb_uri is not None
    container = Container.build(settings, settings.mongodb_uri)
    runner = web.AppRunner(build_app(container), shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        await asyncio.wait_for(container.indexes_ready.wait(), 30)
        yield Service(container, f"http://{host}:{port}")
    finally:
        await runner.cleanup()
