"""The `_id` indexes the service adds to the embedded FerretDB's SQLite tables (index_ids)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from bot.storage import Database, Repositories
from bot.storage.embedded import ID_INDEX_SUFFIX, index_ids

# The statement FerretDB v1.24.2 runs for a filter that is exactly {"_id": <string>}
# (internal/backends/sqlite/collection.go, Query); '"x"' is the string x in its JSON.
FERRETDB_ID_QUERY = "SELECT _ferretdb_sjson FROM \"{table}\" WHERE _ferretdb_sjson->'$._id' = ?"


def tables(path: Path) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return dict(connection.execute("SELECT name, table_name FROM _ferretdb_collections"))


def plan(path: Path, table: str) -> str:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        rows = connection.execute(
            "EXPLAIN QUERY PLAN " + FERRETDB_ID_QUERY.format(table=table), ('"x"',)
        ).fetchall()
    return " ".join(str(row[-1]) for row in rows)


@pytest.fixture
def files(sqlite_dir: Path | None, db_name: str) -> Path:
    if sqlite_dir is None:
        pytest.skip("MONGODB_URI is set: no embedded database to prepare")
    return sqlite_dir / f"{db_name}.sqlite"


async def test_every_collection_is_looked_up_by_id_through_an_index(
    repos: Repositories, files: Path
) -> None:
    found = tables(files)
    # ensure_indexes made every collection, even those no index of ours names.
    assert set(found) == {r.collection_name for r in repos.all()}
    for table in found.values():
        assert f"USING INDEX {table}{ID_INDEX_SUFFIX}" in plan(files, table)


async def test_documents_read_and_written_by_id_are_the_right_ones(
    repos: Repositories, files: Path
) -> None:
    collection = repos.messages.collection
    await collection.insert_many([{"_id": f"m{i}", "n": i} for i in range(50)])
    assert (await collection.find_one({"_id": "m17"}) or {}).get("n") == 17
    assert await collection.find_one({"_id": "absent"}) is None
    await collection.update_one({"_id": "m3"}, {"$set": {"n": -3}})
    await collection.replace_one({"_id": "m4"}, {"n": -4})
    await collection.delete_one({"_id": "m5"})
    assert [d["n"] async for d in collection.find({"_id": {"$in": ["m3", "m4", "m5"]}})] == [-3, -4]
    with pytest.raises(Exception, match="duplicate key"):
        await collection.insert_one({"_id": "m6"})  # FerretDB's own unique index still rules
    assert await collection.count_documents({}) == 49


async def test_it_is_idempotent_and_follows_collections_made_and_dropped(
    repos: Repositories, database: Database, db_name: str, files: Path
) -> None:
    assert index_ids(files.parent, db_name) == 0  # the fixture prepared them all
    await database.db["made_later"].insert_one({"_id": "a"})
    assert index_ids(files.parent, db_name) == 1
    await database.db["made_later"].drop()  # takes our index with its table
    assert index_ids(files.parent, db_name) == 0
    assert "made_later" not in tables(files)
    assert index_ids(files.parent, "no_such_database") == 0
