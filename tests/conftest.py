from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.app import Container
from bot.config import Settings
from bot.domain.models import Channel, new_id
from bot.storage import Database, Repositories
from bot.storage.embedded import EmbeddedDatabase, index_ids
from tests.redis_server import redis_server
from tests.support import FixedClock, RecordingSender


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    return Settings(_env_file=None).cache_dir


@pytest.fixture(scope="session")
def embedded(
    tmp_path_factory: pytest.TempPathFactory, cache_dir: Path
) -> Iterator[EmbeddedDatabase | None]:
    """The embedded FerretDB for the whole run, or None when MONGODB_URI names a server."""
    if os.environ.get("MONGODB_URI"):
        yield None
        return
    with EmbeddedDatabase.start(cache_dir, tmp_path_factory.mktemp("ferretdb")) as db:
        yield db


@pytest.fixture(scope="session")
def mongo_uri(embedded: EmbeddedDatabase | None) -> str:
    """A real MongoDB wire server for the whole run: MONGODB_URI, or the embedded FerretDB."""
    return embedded.uri if embedded is not None else os.environ["MONGODB_URI"]


@pytest.fixture(scope="session")
def sqlite_dir(embedded: EmbeddedDatabase | None) -> Path | None:
    """The embedded server's files, prepared as the service prepares them (index_ids)."""
    return None if embedded is None else embedded.sqlite_dir


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of the tests' own for the whole run (fails when it is not installed)."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def db_name() -> str:
    return f"test_{new_id()[:12]}"


@pytest.fixture
async def database(mongo_uri: str, db_name: str) -> AsyncIterator[Database]:
    database = Database(mongo_uri, db_name)
    yield database
    await database.client.drop_database(db_name)
    await database.close()


@pytest.fixture
async def repos(database: Database, db_name: str, sqlite_dir: Path | None) -> Repositories:
    repositories = Repositories.create(database)
    await repositories.ensure_indexes()
    if sqlite_dir is not None:
        index_ids(sqlite_dir, db_name)
    return repositories


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def settings(mongo_uri: str, db_name: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        MONGODB_URI=mongo_uri,
        mongodb_database=db_name,
        data_dir=tmp_path / "data",
    )


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
async def container(
    settings: Settings,
    mongo_uri: str,
    sqlite_dir: Path | None,
    clock: FixedClock,
    sender: RecordingSender,
) -> AsyncIterator[Container]:
    built = Container.build(settings, mongo_uri, clock=clock)
    built.sqlite_dir = sqlite_dir
    await built.prepare_database()
    for channel in Channel:
        built.delivery.register(channel, sender)
    yield built
    await built.close()  # closing twice is fine; a test may have closed it to "restart"
    cleanup = Database(mongo_uri, settings.mongodb_database)
    await cleanup.client.drop_database(settings.mongodb_database)
    await cleanup.close()
