"""Shared helpers of the benchmark scripts: start what a benchmark needs, measure a
process from /proc, print a table. Nothing here is used by the service or the tests."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from prometheus_client.metrics_core import Metric  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from pymongo import MongoClient  # noqa: E402

from bot.config import _user_cache_dir  # noqa: E402
from bot.storage.embedded import EmbeddedDatabase, free_port, index_ids  # noqa: E402

BENCH = ROOT / "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

# Limits that protect the service from one abusive address. Every benchmark client
# comes from 127.0.0.1, so they are lifted for the service under test (and said so).
BENCH_LIMITS = {
    "BOT_WIDGET_RATE_PER_IP": "10000000 per minute",
    "BOT_WIDGET_CONNECTS_PER_IP": "10000000 per minute",
    "BOT_WIDGET_RATE_PER_CONNECTION": "10000 per 10 seconds",
}


def raise_nofile(wanted: int = 65536) -> int:
    """Lift the open-files soft limit (children inherit it): 5,000 sockets need it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> str:
    mem = next(
        int(line.split()[1]) // 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    return f"{os.cpu_count()} cores ({model}), {mem} MiB RAM, Python {sys.version.split()[0]}"


def header(title: str) -> None:
    print(f"# {title}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {machine()}")
    print(f"# load average at start: {loadavg()}")


def rss_kib(pid: int) -> int:
    """Resident set size of a process (VmRSS), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (it reads in a terminal and pastes into docs/performance.md)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in text)]) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in text
    ]
    return "\n".join(lines)


def command_totals(families: Iterable[Metric]) -> dict[tuple[str, str], tuple[float, float]]:
    """(command, collection) -> (how many, seconds in all), from the service's own timer of
    every database command (bot.metrics.CommandTimer, `feedback_database_command_seconds`):
    a registry's collect() in this process, or a scraped /metrics page parsed by
    prometheus_client.parser.text_string_to_metric_families."""
    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for metric in families:
        if metric.name != "feedback_database_command_seconds":
            continue
        for sample in metric.samples:
            key = (sample.labels["command"], sample.labels["collection"])
            if sample.name.endswith("_count"):
                totals[key][0] = sample.value
            elif sample.name.endswith("_sum"):
                totals[key][1] = sample.value
    return {k: (v[0], v[1]) for k, v in totals.items()}


def scraped_command_totals(base: str) -> dict[tuple[str, str], tuple[float, float]]:
    """command_totals of a running service, from its /metrics page."""
    status, body = http_get(base + "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    return command_totals(text_string_to_metric_families(body.decode()))


def command_table(
    before: dict[tuple[str, str], tuple[float, float]],
    after: dict[tuple[str, str], tuple[float, float]],
    per: int,
) -> tuple[list[list[object]], float, float]:
    """Rows (command, collection, per item, ms per item, ms each) of the commands sent
    between two command_totals, most time first; and the commands and ms per item."""
    stats = {
        k: (count - before.get(k, (0.0, 0.0))[0], (secs - before.get(k, (0.0, 0.0))[1]) * 1000)
        for k, (count, secs) in after.items()
    }
    stats = {k: v for k, v in stats.items() if v[0]}
    rows: list[list[object]] = [
        [cmd, coll, round(count / per, 2), round(ms / per, 2), round(ms / count, 2)]
        for (cmd, coll), (count, ms) in sorted(stats.items(), key=lambda kv: -kv[1][1])
    ]
    commands = sum(count for count, _ in stats.values()) / per
    ms = sum(ms for _, ms in stats.values()) / per
    return rows, commands, ms


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited: {log.read_text()[-3000:]}")
        try:
            if http_get(url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s; see {log}")


# The database the service and the scripts use: a fresh one per run, dropped afterwards
# on a MONGODB_URI server (the embedded one is thrown away with its directory).
BENCH_DB = f"bench_{os.getpid()}"


@dataclass
class BenchDatabase:
    uri: str
    pid: int | None  # FerretDB's process, for its CPU time; None: MONGODB_URI
    sqlite_dir: Path | None = None  # the embedded server's files (see index_ids)

    def prepare(self) -> None:
        """What `bot serve` does to the embedded database it starts: the `_id` indexes
        (bot.storage.embedded.index_ids). Call it once the collections exist."""
        if self.sqlite_dir is not None:
            index_ids(self.sqlite_dir, BENCH_DB)


@contextmanager
def embedded_database(workdir: Path) -> Iterator[BenchDatabase]:
    """MONGODB_URI when it is set (database BENCH_DB, dropped at the end); otherwise a
    fresh FerretDB (SQLite) in workdir, exactly what the service starts by itself."""
    uri = os.environ.get("MONGODB_URI")
    if uri:
        try:
            yield BenchDatabase(uri, None)
        finally:
            client: MongoClient[dict[str, object]] = MongoClient(uri)
            client.drop_database(BENCH_DB)
            client.close()
        return
    db = EmbeddedDatabase.start(_user_cache_dir() / "feedback-bot", workdir / "ferretdb")
    try:
        yield BenchDatabase(db.uri, db.process.pid, db.sqlite_dir)
    finally:
        db.stop()


@dataclass
class Child:
    """A server child process (the service or the echo server) on 127.0.0.1:port."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def service_env(**overrides: str) -> dict[str, str]:
    """The environment of tests/processes.py: ours without BOT_* settings, plus overrides."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BOT_") and k != "MONGODB_URI" and not k.startswith("PYTEST")
    }
    env["PYTHONPATH"] = str(ROOT)
    env["BOT_LOG_FORMAT"] = "json"
    env["BOT_LOG_LEVEL"] = "WARNING"  # an INFO line per event would be part of what we measure
    env.update(overrides)
    return env


@contextmanager
def service(
    workdir: Path, db: BenchDatabase, *, limits: bool = True, **env: str
) -> Iterator[Child]:
    """`python -m bot serve` on the given database, as tests/processes.py runs it, and the
    database prepared as the service prepares the embedded one it starts itself."""
    port = free_port()
    log = workdir / f"service-{port}.log"
    settings = {
        "BOT_HTTP_PORT": str(port),
        "MONGODB_URI": db.uri,
        "BOT_MONGODB_DATABASE": BENCH_DB,
        "BOT_DATA_DIR": str(workdir / "data"),
        "BOT_RETENTION_INTERVAL_MINUTES": "100000",
        **(BENCH_LIMITS if limits else {}),
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"],
            cwd=ROOT,
            env=service_env(**settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    child = Child(process, port, log)
    try:
        wait_http(child.base + "/healthz", process, log)  # 200: collections and indexes made
        db.prepare()
        yield child
    finally:
        child.stop()


@contextmanager
def baseline(workdir: Path, script: str, *args: str) -> Iterator[Child]:
    """A baseline server of bench/ (`script --port P *args`), once its /healthz answers."""
    port = free_port()
    log = workdir / f"{Path(script).stem}-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, str(BENCH / script), "--port", str(port), *args],
            cwd=ROOT,
            env=service_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    child = Child(process, port, log)
    try:
        wait_http(child.base + "/healthz", process, log)
        yield child
    finally:
        child.stop()


def echo_server(workdir: Path, *args: str) -> AbstractContextManager[Child]:
    """bench/echo_server.py: the bare python-socketio server to compare with."""
    return baseline(workdir, "echo_server.py", *args)


def bare_telegram_bot(
    workdir: Path, api: str, token: str, *, webhook: bool
) -> AbstractContextManager[Child]:
    """bench/telegram_bare_bot.py: the bare aiogram bot to compare the service with."""
    mode = ["--mode", "webhook", "--secret", TELEGRAM_SECRET] if webhook else ["--mode", "polling"]
    return baseline(workdir, "telegram_bare_bot.py", "--api", api, "--token", token, *mode)


class NodeLoad:
    """bench/load.mjs as a child: JSON commands on stdin, one JSON line back per command."""

    def __init__(self, url: str, log: Path) -> None:
        self.log = log
        self._err = log.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv
            [shutil.which("node") or "node", str(BENCH / "load.mjs"), url],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
        )

    def command(self, **cmd: object) -> dict[str, object]:
        if self.process.stdin is None or self.process.stdout is None:
            raise RuntimeError("load.mjs has no pipes")
        self.process.stdin.write((json.dumps(cmd) + "\n").encode())
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"load.mjs exited: {self.log.read_text()[-3000:]}")
        answer: dict[str, object] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"load.mjs: {answer['error']}")
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._err.close()

    def __enter__(self) -> NodeLoad:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


TELEGRAM_SECRET = "bench-webhook-secret-0123456789"  # noqa: S105 - for the fake only


def telegram_env(fake_base: str, token: str, *, webhook: bool) -> dict[str, str]:
    """The service's settings for the fake Bot API (tests/fake_telegram.py) in this process."""
    env = {
        "BOT_TELEGRAM_TOKEN": token,
        "BOT_TELEGRAM_API_BASE": fake_base,
        "BOT_TELEGRAM_POLLING_TIMEOUT": "1",
        # Every benchmark user is one chat; the flood pause would only hide the service.
        "BOT_TELEGRAM_FLOOD_MESSAGES": "100000",
        # Telegram's 30 messages/s for a bot would measure the pacing, not the service.
        "BOT_TELEGRAM_MESSAGES_PER_SECOND": "100000",
    }
    if webhook:
        # Telegram would call this URL; the benchmark posts to /telegram/webhook itself.
        env["BOT_TELEGRAM_WEBHOOK_URL"] = "https://bench.example.com/"
        env["BOT_TELEGRAM_WEBHOOK_SECRET"] = TELEGRAM_SECRET
    return env


class AsyncService:
    """`service()` entered from asyncio code without blocking the loop (the fake Bot API
    runs in the same loop and must answer the service while it starts)."""

    def __init__(self, workdir: Path, db: BenchDatabase, **env: str) -> None:
        self._cm = service(workdir, db, **env)

    async def __aenter__(self) -> Child:
        return await asyncio.to_thread(self._cm.__enter__)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self._cm.__exit__, None, None, None)
