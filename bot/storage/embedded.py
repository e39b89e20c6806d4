"""The embedded database for development and tests: FerretDB with SQLite underneath.

FerretDB v1 speaks the real MongoDB wire protocol, so the code and the tests talk
to it exactly as they talk to MongoDB in production. It is built from source with
Go once per version into the user's cache directory, and started as a child
process on 127.0.0.1 and a free port.

`go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` builds a binary
that panics at start, because the module archive lacks the generated
`build/version/version.txt`; so the module source is downloaded with the Go
toolchain, that file is written, and the binary is built from the copy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

FERRETDB_VERSION = "v1.24.2"
FERRETDB_MODULE = "github.com/FerretDB/FerretDB"

log = logging.getLogger(__name__)


class EmbeddedDatabaseError(RuntimeError):
    """The embedded database could not be built or started."""


NO_GO_MESSAGE = (
    "The embedded database (FerretDB {version}) is built with Go, and `go` was not found "
    "on PATH. Either install Go (https://go.dev/doc/install; Debian: apt-get install golang), "
    "or set MONGODB_URI to a running MongoDB (e.g. mongodb://127.0.0.1:27017), "
    "or start one with `docker compose -f docker/compose.yaml up`."
)


def binary_path(cache_dir: Path) -> Path:
    return cache_dir / "ferretdb" / FERRETDB_VERSION / "ferretdb"


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        cmd, cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise EmbeddedDatabaseError(
            f"`{' '.join(cmd)}` failed ({result.returncode}):\n{result.stderr.strip()[-2000:]}"
        )
    return result.stdout


def ensure_binary(cache_dir: Path) -> Path:
    """Return the cached FerretDB binary, building it first if it is not there."""
    target = binary_path(cache_dir)
    if target.is_file() and os.access(target, os.X_OK):
        return target
    go = shutil.which("go")
    if go is None:
        raise EmbeddedDatabaseError(NO_GO_MESSAGE.format(version=FERRETDB_VERSION))
    log.info("building embedded database", extra={"version": FERRETDB_VERSION})
    info = json.loads(
        _run([go, "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"])
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ferretdb-build-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(info["Dir"], src)
        for path in src.rglob("*"):  # the module cache is read-only
            path.chmod(path.stat().st_mode | 0o200)
        (src / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
        partial = target.with_suffix(".partial")
        _run([go, "build", "-trimpath", "-o", str(partial), "./cmd/ferretdb"], cwd=src)
        partial.replace(target)  # atomic: a concurrent reader never sees half a binary
    return target


def sqlite_dir(data_dir: Path) -> Path:
    """Where an embedded server on `data_dir` keeps its SQLite files (one per database)."""
    return data_dir / "sqlite"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _ping(uri: str, timeout: float) -> bool:
    client: MongoClient[dict[str, object]] = MongoClient(
        uri, serverSelectionTimeoutMS=int(timeout * 1000), connectTimeoutMS=int(timeout * 1000)
    )
    try:
        client.admin.command("ping")
    except PyMongoError:
        return False
    else:
        return True
    finally:
        client.close()


ID_INDEX_SUFFIX = "_bot_id_path"


def index_ids(directory: Path, database: str) -> int:
    """Give every collection of `database` an index FerretDB's `_id` look-ups can use.

    FerretDB v1.24 stores a collection as a SQLite table of JSON documents. It indexes
    `_id` as `_ferretdb_sjson->"_id"` but filters on it as `_ferretdb_sjson->'$._id'`;
    SQLite uses an expression index only for the very same expression, so every look-up
    by `_id` scanned the whole table (95 finds/s on 25,000 documents; with this index
    1,400/s, see docs/performance.md). This adds the index FerretDB's own query can use,
    next to FerretDB's, under a name of ours. FerretDB does not list it and drops it with
    the table. Idempotent; returns how many indexes it created.
    """
    path = directory / f"{database}.sqlite"
    if not path.exists():
        return 0
    created = 0
    # FerretDB writes meanwhile: wait for its locks as it waits for ours (busy_timeout).
    with contextlib.closing(sqlite3.connect(path, timeout=10.0)) as connection:
        tables = [
            row[0] for row in connection.execute("SELECT table_name FROM _ferretdb_collections")
        ]
        existing = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
        for table in tables:
            name = table + ID_INDEX_SUFFIX
            if name in existing:
                continue
            connection.execute(
                f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" (_ferretdb_sjson->\'$._id\')'
            )
            created += 1
        connection.commit()
    return created


@dataclass
class EmbeddedDatabase:
    """A running FerretDB child process; `uri` is what the driver connects to."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    data_dir: Path
    log_path: Path

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/"

    @property
    def sqlite_dir(self) -> Path:
        return sqlite_dir(self.data_dir)

    @property
    def endpoint_file(self) -> Path:
        return self.data_dir / "endpoint.json"

    @classmethod
    def start(
        cls,
        cache_dir: Path,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        wait_seconds: float = 30.0,
    ) -> EmbeddedDatabase:
        binary = ensure_binary(cache_dir)
        files = sqlite_dir(data_dir)
        state_dir = data_dir / "state"
        files.mkdir(parents=True, exist_ok=True)
        state_dir.mkdir(parents=True, exist_ok=True)
        port = port or free_port(host)
        log_path = data_dir / "ferretdb.log"
        # SQLite's synchronous=NORMAL (FerretDB keeps its other defaults: WAL, a 10 s busy
        # timeout): a commit is not flushed to the disk by itself, the write-ahead log is
        # at each checkpoint. A killed process loses nothing; a power cut may lose the last
        # commits, as MongoDB's default write concern may (it flushes its journal every
        # 100 ms). FULL, SQLite's default, flushed at every commit: that, not the CPU,
        # capped the service at ~260 widget inputs/s (docs/performance.md).
        url = f"file:{files}/?_pragma=synchronous(normal)"
        # Go's collector at GOGC=400 (its default is 100): FerretDB allocates a great deal
        # per command, and collecting a heap of a few MiB five times less often took ~20 %
        # off its CPU per Telegram update for ~10 MiB more memory (docs/performance.md,
        # fifth pass). A GOGC set in our environment wins.
        env = {**os.environ, "GOGC": os.environ.get("GOGC", "400")}
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [
                    str(binary),
                    "--handler=sqlite",
                    f"--sqlite-url={url}",
                    f"--listen-addr={host}:{port}",
                    f"--state-dir={state_dir}",
                    "--debug-addr=-",
                    "--telemetry=disable",
                    "--log-level=warn",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # Ctrl-C in the terminal reaches us, not it: we stop it
            )
        db = cls(process=process, host=host, port=port, data_dir=data_dir, log_path=log_path)
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EmbeddedDatabaseError(
                    f"FerretDB exited with code {process.returncode} at start; see {log_path}"
                )
            if _ping(db.uri, timeout=0.5):
                db.endpoint_file.write_text(
                    json.dumps({"uri": db.uri, "pid": process.pid, "version": FERRETDB_VERSION})
                )
                log.info("embedded database started", extra={"port": port})
                return db
            time.sleep(0.05)
        db.stop()
        raise EmbeddedDatabaseError(
            f"FerretDB did not answer ping in {wait_seconds}s; see {log_path}"
        )

    @staticmethod
    def running_uri(data_dir: Path) -> str | None:
        """The URI of an embedded server already running on `data_dir`, if any answers."""
        try:
            uri = str(json.loads((data_dir / "endpoint.json").read_text())["uri"])
        except (OSError, ValueError, KeyError):
            return None
        return uri if _ping(uri, timeout=1.0) else None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop cleanly (SIGTERM lets SQLite finish its writes), kill only if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.endpoint_file.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
