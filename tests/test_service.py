"""The service as a process: start-up, health, metrics, shutdown, persistence."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from cryptography.fernet import Fernet
from pymongo import MongoClient

from bot.config import ROOT
from bot.metrics import GcTimer, Metrics
from bot.storage.embedded import EmbeddedDatabase, free_port
from tests.processes import Service, get, running_service, service_env

pytestmark = pytest.mark.slow


def mongo(uri: str) -> MongoClient[dict[str, Any]]:
    return MongoClient(uri)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_cli_help_lists_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--help"],
        cwd=ROOT,
        env=service_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    for command in ("serve", "chat", "devdb"):
        assert command in result.stdout


def test_serve_on_the_embedded_database_keeps_data_across_restarts(
    tmp_path: Path, cache_dir: Path
) -> None:
    data_dir = tmp_path / "data"
    env = {"BOT_DATA_DIR": str(data_dir), "BOT_CACHE_DIR": str(cache_dir)}
    endpoint_file = data_dir / "ferretdb" / "endpoint.json"

    with running_service(tmp_path, **env) as service:
        body = service.wait_for_health(200)
        assert body == {"status": "ok", "database": "up", "indexes": True}
        endpoint = json.loads(endpoint_file.read_text())
        with mongo(endpoint["uri"]) as client:
            client.feedback.probe.insert_one({"_id": "kept", "text": "still here"})
            assert "tickets" in client.feedback.list_collection_names()  # indexes were created
        assert endpoint["pid"] in service.children()
        assert service.stop() == 0  # graceful: SIGTERM, clean exit
        assert not alive(endpoint["pid"])  # and the database went down with it
        assert not endpoint_file.exists()

    with running_service(tmp_path, **env) as service:
        service.wait_for_health(200)
        endpoint = json.loads(endpoint_file.read_text())
        with mongo(endpoint["uri"]) as client:
            assert client.feedback.probe.find_one({"_id": "kept"}) == {
                "_id": "kept",
                "text": "still here",
            }
        status, metrics = get(service.base + "/metrics")
        assert status == 200
        assert b"feedback_database_up 1.0" in metrics
        assert service.stop() == 0
    log = (tmp_path / f"service-{service.port}.log").read_text()
    assert all(json.loads(line)["level"] for line in log.splitlines())  # structured logs


def test_with_mongodb_uri_no_embedded_server_is_started(tmp_path: Path, mongo_uri: str) -> None:
    data_dir = tmp_path / "data"
    with running_service(
        tmp_path,
        MONGODB_URI=mongo_uri,
        BOT_DATA_DIR=str(data_dir),
        BOT_MONGODB_DATABASE="uri_test",
        BOT_CACHE_DIR=str(tmp_path / "empty-cache"),  # no FerretDB binary to start anyway
    ) as service:
        service.wait_for_health(200)
        assert service.children() == []
        assert not (data_dir / "ferretdb").exists()
        assert not (tmp_path / "empty-cache").exists()
        assert service.stop() == 0
    with mongo(mongo_uri) as client:
        client.drop_database("uri_test")


def test_make_run_starts_the_local_redis_that_bot_redis_url_names(
    tmp_path: Path, mongo_uri: str
) -> None:
    # Issue 8: Redis "started by the scripts when configured". scripts/serve.sh is what
    # `make run` runs after the set-up.
    redis_port, port = free_port(), free_port()
    env = service_env(
        BOT_HTTP_PORT=str(port),
        MONGODB_URI=mongo_uri,
        BOT_MONGODB_DATABASE="serve_sh_test",
        BOT_DATA_DIR=str(tmp_path / "data"),
        BOT_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        BOT_FORM_LINK_SECRET="a-form-link-secret-for-this-test-only",
        BOT_CONSOLE_SESSION_KEY=Fernet.generate_key().decode(),
    )
    log = tmp_path / "serve.log"

    def ping() -> bool:
        client = redis.Redis(port=redis_port, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False
        finally:
            client.close()

    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(ROOT / "scripts" / "serve.sh")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's job
        )
    try:
        Service(process, port, log).wait_for_health(200)
        assert ping()
        assert f"starting redis-server on 127.0.0.1:{redis_port}" in log.read_text()
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
        process.wait(timeout=20)
    assert not ping()  # stopped with the service
    with mongo(mongo_uri) as client:
        client.drop_database("serve_sh_test")


def test_healthz_is_503_while_the_database_is_down(tmp_path: Path, cache_dir: Path) -> None:
    port = free_port()
    database = EmbeddedDatabase.start(cache_dir, tmp_path / "db", port=port)
    try:
        with running_service(
            tmp_path,
            MONGODB_URI=database.uri,
            BOT_MONGODB_TIMEOUT_MS="500",
            BOT_DATA_DIR=str(tmp_path / "data"),
        ) as service:
            service.wait_for_health(200)
            database.stop()
            body = service.wait_for_health(503)
            assert body["database"] == "down"
            _status, metrics = get(service.base + "/metrics")
            assert b"feedback_database_up 0.0" in metrics
            database = EmbeddedDatabase.start(cache_dir, tmp_path / "db", port=port)
            service.wait_for_health(200)  # recovers without a restart
            assert service.stop() == 0
    finally:
        database.stop()


def test_the_service_starts_while_the_database_is_unreachable(tmp_path: Path) -> None:
    with running_service(
        tmp_path,
        MONGODB_URI=f"mongodb://127.0.0.1:{free_port()}/",
        BOT_MONGODB_TIMEOUT_MS="300",
        BOT_DATA_DIR=str(tmp_path / "data"),
    ) as service:
        body = service.wait_for_health(503)
        assert body == {"status": "unavailable", "database": "down"}
        assert service.stop() == 0


def test_embedded_database_data_survives_a_restart(tmp_path: Path, cache_dir: Path) -> None:
    with EmbeddedDatabase.start(cache_dir, tmp_path) as first, mongo(first.uri) as client:
        client.app.things.insert_one({"_id": 1, "name": "反馈"})
    assert first.process.poll() is not None
    with (
        EmbeddedDatabase.start(cache_dir, tmp_path) as second,
        mongo(second.uri) as client,
    ):
        assert client.app.things.find_one({"_id": 1}) == {"_id": 1, "name": "反馈"}


def test_the_embedded_server_collects_garbage_less_often_unless_told_otherwise(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def gogc(db: EmbeddedDatabase) -> str:
        environ = Path(f"/proc/{db.process.pid}/environ").read_bytes().split(b"\0")
        return next(v.decode() for v in environ if v.startswith(b"GOGC=")).removeprefix("GOGC=")

    monkeypatch.delenv("GOGC", raising=False)
    with EmbeddedDatabase.start(cache_dir, tmp_path / "a") as db:
        assert gogc(db) == "400"  # docs/performance.md, fifth pass
    monkeypatch.setenv("GOGC", "150")
    with EmbeddedDatabase.start(cache_dir, tmp_path / "b") as db:
        assert gogc(db) == "150"


def test_without_go_the_error_names_the_alternatives(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "devdb", "build"],
        cwd=ROOT,
        env=service_env(PATH="/nonexistent", BOT_CACHE_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "`go` was not found" in result.stderr
    assert "MONGODB_URI" in result.stderr
    assert "docker compose -f docker/compose.yaml up" in result.stderr


def test_the_terminal_chat_runs_the_whole_dialogue(tmp_path: Path, mongo_uri: str) -> None:
    answers = [
        "1",  # I agree
        "1",  # expanded use: no, thank you
        "1",  # I accept the licence
        "2",  # service quality
        "5",  # 5 stars
        "The staff at the counter were very helpful.",
        "1",  # done with attachments
        "1",  # skip contact details
        "1",  # send it
        "/status",
        "/quit",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "bot", "chat", "--user", "dev-1", "--locale", "en"],
        cwd=ROOT,
        env=service_env(MONGODB_URI=mongo_uri, BOT_MONGODB_DATABASE="chat_test"),
        input="\n".join(answers) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    with mongo(mongo_uri) as client:
        client.drop_database("chat_test")
    assert result.returncode == 0, result.stderr
    assert "[message] Thank you, we have received your feedback." in result.stdout
    assert "Service quality" in result.stdout
    assert "FB-2026-" in result.stdout


def test_garbage_collections_are_timed_while_the_timer_is_entered() -> None:
    metrics = Metrics()

    def full_collections() -> float:
        return (
            metrics.registry.get_sample_value(
                "feedback_gc_pause_seconds_count", {"generation": "2"}
            )
            or 0.0
        )

    with GcTimer(metrics):
        gc.collect()
        gc.collect()
    assert full_collections() == 0  # noted, observed only when asked (before a scrape)
    metrics.record_gc_pauses()
    assert full_collections() == 2
    gc.collect()  # the timer left the collector's callbacks with the block
    metrics.record_gc_pauses()
    assert full_collections() == 2
