"""What the fault scripts share: the database, the service as a child process, widget clients.

Each script starts everything it needs itself: FerretDB through the project's own
`EmbeddedDatabase`, the service as `python -m bot serve` child processes pointed at it
with MONGODB_URI, and (for Telegram) the fake Bot API of the tests. Nothing here is a mock
of the service: the clients are python-socketio's real AsyncClient over websockets.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import socketio  # noqa: E402 - after the path is set

from bot.config import Settings  # noqa: E402
from bot.domain.models import Channel  # noqa: E402
from bot.domain.privacy import conversation_key  # noqa: E402
from bot.storage.embedded import EmbeddedDatabase, free_port  # noqa: E402
from tests.processes import service_env  # noqa: E402

NAMESPACE = "/widget"

# A load test is many clients on one address: the per-address limits would refuse them.
LOAD_ENV = {
    "BOT_WIDGET_RATE_PER_CONNECTION": "100000 per 1 second",
    "BOT_WIDGET_RATE_PER_IP": "1000000 per 1 second",
    "BOT_WIDGET_CONNECTS_PER_IP": "1000000 per 1 second",
    "BOT_FORM_POSTS_PER_IP": "1000000 per 1 hour",
    "BOT_CONSOLE_LOGIN_FAILURES": "1000000 per 1 minute",
    "BOT_CONSOLE_LOGIN_FAILURES_PER_ADDRESS": "1000000 per 1 minute",
    "BOT_LOG_LEVEL": "WARNING",
    "BOT_RETENTION_INTERVAL_MINUTES": "1440",
}


def telegram_service_env(db_uri: str, db_name: str, token: str, api_base: str) -> dict[str, str]:
    """The service under load against the fake Bot API (tests/fake_telegram.py)."""
    return {
        **LOAD_ENV,
        "MONGODB_URI": db_uri,
        "BOT_MONGODB_DATABASE": db_name,
        "BOT_TELEGRAM_TOKEN": token,
        "BOT_TELEGRAM_API_BASE": api_base,
    }


def workdir(name: str) -> Path:
    """A fresh directory for this run's database files and logs (kept for inspection)."""
    return Path(tempfile.mkdtemp(prefix=f"fault-{name}-"))


def start_database(tmp: Path, port: int | None = None) -> EmbeddedDatabase:
    return EmbeddedDatabase.start(Settings(_env_file=None).cache_dir, tmp / "ferretdb", port=port)


def http_status(url: str, timeout: float = 3.0) -> int | None:
    """The status of a GET, or None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


@dataclass
class ServiceProcess:
    """`python -m bot serve` on a fixed port; it can be killed and started again there."""

    tmp: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.tmp / f"service-{self.port}.log"

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve"],
                cwd=ROOT,
                env=service_env(BOT_HTTP_PORT=str(self.port), **self.env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def wait_healthy(self, timeout: float = 60.0) -> float:  # noqa: ASYNC109
        """Seconds until /healthz said 200."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if not self.alive():
                raise RuntimeError(f"service exited; see {self.log}")
            if await asyncio.to_thread(http_status, self.base + "/healthz", 1.0) == 200:
                return time.monotonic() - began
            await asyncio.sleep(0.1)
        raise RuntimeError(f"no /healthz 200 in {timeout}s; see {self.log}")

    def kill9(self) -> None:
        if self.process is None:
            raise RuntimeError("the service was never started")
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def start_with_tickets(service: ServiceProcess, clients: list[WidgetClient]) -> None:
    """Start the service and let every client connect and file a ticket (2 minutes at most)."""
    service.start()
    await service.wait_healthy()
    await asyncio.gather(*(c.connect() for c in clients))
    deadline = time.monotonic() + 120
    await asyncio.gather(*(c.give_feedback(deadline) for c in clients))


class WidgetClient:
    """One widget tab: reconnects by itself and resends an unacknowledged input with the
    same client_id, as the real widget does (docs/widget-protocol.md)."""

    def __init__(self, url: str, index: int) -> None:
        self.url = url
        self.index = index
        self.visitor = secrets.token_urlsafe(16)
        self.external_id = f"visitor:{self.visitor}"
        self.room = conversation_key(Channel.WIDGET.value, self.external_id)
        self.sio = socketio.AsyncClient(
            reconnection=True, reconnection_delay=0.3, reconnection_delay_max=1.0
        )
        self.seen: dict[int, dict[str, Any]] = {}  # seq -> message, from history and pushes
        self.acked: dict[str, int | None] = {}  # client_id -> seq
        self.outcomes: Counter[str] = Counter()
        self.log: list[tuple[float, str]] = []  # (monotonic time, outcome) of every attempt
        self.sio.on("history", self._history, namespace=NAMESPACE)
        self.sio.on("message", self._message, namespace=NAMESPACE)

    async def _history(self, data: dict[str, Any]) -> None:
        for message in data["messages"]:
            self.seen[int(message["seq"])] = message

    async def _message(self, data: dict[str, Any]) -> None:
        self.seen[int(data["seq"])] = data

    async def connect(self) -> None:
        await self.sio.connect(
            self.url,
            namespaces=[NAMESPACE],
            auth={"visitor": self.visitor, "locale": "en"},
            transports=["websocket"],
            wait_timeout=10,
        )

    async def close(self) -> None:
        await self.sio.disconnect()

    async def call(self, event: str, data: Any, timeout: float = 5.0) -> dict[str, Any] | str:  # noqa: ASYNC109
        """The ack, or what went wrong: "timeout", "disconnected"."""
        if not self.sio.namespaces.get(NAMESPACE):
            return "disconnected"
        try:
            result = await self.sio.call(event, data, namespace=NAMESPACE, timeout=timeout)
        except socketio.exceptions.TimeoutError:
            return "timeout"
        except socketio.exceptions.SocketIOError:
            return "disconnected"
        return result if isinstance(result, dict) else "bad-ack"

    async def send(
        self,
        kind: str,
        value: str,
        *,
        client_id: str | None = None,
        deadline: float,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> dict[str, Any] | None:
        """Send until acknowledged (same client_id every time) or `deadline` (monotonic)."""
        client_id = client_id or secrets.token_urlsafe(12)
        data = {"client_id": client_id, "kind": kind, "value": value}
        while time.monotonic() < deadline:
            result = await self.call("input", data, timeout)
            if isinstance(result, dict) and result.get("ok"):
                self.outcomes["acked"] += 1
                self.log.append((time.monotonic(), "acked"))
                self.acked[client_id] = result.get("seq")
                return result
            outcome = result if isinstance(result, str) else result["error"]["code"]
            self.outcomes[outcome] += 1
            self.log.append((time.monotonic(), outcome))
            await asyncio.sleep(0.3 if outcome == "disconnected" else 0.5)
        self.outcomes["gave up"] += 1
        return None

    async def give_feedback(self, deadline: float) -> None:
        """The whole flow, so that later free text is stored as messages of a ticket."""
        steps = [("command", "start"), *[("choice", v) for v in ("yes", "yes", "yes")]]
        steps += [("choice", "user_interface"), ("choice", "3")]
        steps += [("text", f"Load client {self.index} found the page slow.")]
        steps += [("choice", v) for v in ("done", "skip", "submit")]
        for kind, value in steps:
            if await self.send(kind, value, deadline=deadline) is None:
                raise RuntimeError(f"client {self.index} could not finish the flow")


def table(title: str, rows: list[tuple[str, object, str]]) -> None:
    """Print a check table: what, the figure, and OK/FAIL or a note."""
    width = max(len(r[0]) for r in rows)
    print(f"\n{title}\n" + "-" * (width + 32))
    for what, figure, verdict in rows:
        print(f"{what:<{width}}  {figure!s:>14}  {verdict}")


def verdict(ok: bool) -> str:
    return "OK" if ok else "FAIL"


def dump(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=str))


def exit_on_sigterm() -> None:
    """SIGTERM (`timeout`, a CI runner) ends the script through its `finally` blocks, so
    the database and the service it started are stopped, not orphaned."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
