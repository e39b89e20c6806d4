"""The console over HTTP: the service's own app (with the console), a signed-out client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Container, build_app
from bot.console import register_console
from tests.console.support import Client


def service_app(container: Container) -> web.Application:
    """build_app, plus the console for as long as build_app does not add it itself."""
    app = build_app(container)
    if not any(
        r.resource is not None and r.resource.canonical == "/console/queue"
        for r in app.router.routes()
    ):
        register_console(app, container)
    return app


@pytest.fixture
async def console(container: Container) -> AsyncIterator[Client]:
    # Tests drain the outbox themselves. The app's own dispatcher then only wakes when a
    # message is enqueued, not every half second: shutting the app down cancels it, and a
    # cancel that lands in the middle of a database call leaves the driver's socket open
    # (a ResourceWarning, an error under `-W error`) or, rarely, is lost altogether.
    container.delivery.poll_seconds = 3600
    async with TestClient(TestServer(service_app(container))) as test_client:
        await asyncio.wait_for(container.indexes_ready.wait(), 30)
        yield test_client
        await asyncio.sleep(0.05)  # let a dispatcher woken by the test go back to sleep
