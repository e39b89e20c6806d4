"""The console over HTTP: the service's own app (with the console), a signed-out client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Container, build_app
from tests.console.support import Client


@pytest.fixture
async def console(container: Container) -> AsyncIterator[Client]:
    # Tests drain the outbox themselves, to see a message pending before it is sent: the
    # app's own dispatcher only wakes when a message is enqueued, not every half second.
    container.delivery.poll_seconds = 3600
    async with TestClient(TestServer(build_app(container))) as test_client:
        await asyncio.wait_for(container.indexes_ready.wait(), 30)
        yield test_client
