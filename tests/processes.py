"""Run the real service (`python -m bot ...`) as a child process for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.config import ROOT
from bot.storage.embedded import free_port


def service_env(**overrides: str) -> dict[str, str]:
    """The parent's environment without our settings, plus `overrides`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BOT_") and k != "MONGODB_URI" and not k.startswith("PYTEST")
    }
    env["PYTHONPATH"] = str(ROOT)
    env["BOT_LOG_FORMAT"] = "json"
    env.update(overrides)
    return env


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> tuple[int, dict[str, object]]:
        status, body = get(self.base + "/healthz")
        return status, json.loads(body)

    def wait_for_health(self, status: int, timeout: float = 60.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"service exited: {self.log.read_text()[-3000:]}")
            try:
                code, body = self.health()
            except OSError as exc:
                last = exc
            else:
                if code == status:
                    return body
                last = (code, body)
            time.sleep(0.1)
        raise AssertionError(f"no /healthz {status} within {timeout}s; last: {last}")

    def stop(self, timeout: float = 20.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def children(self) -> list[int]:
        pid = self.process.pid
        found: list[int] = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
        return found


@contextmanager
def running_service(tmp: Path, **env: str) -> Iterator[Service]:
    port = free_port()
    log = tmp / f"service-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"],
            cwd=ROOT,
            env=service_env(BOT_HTTP_PORT=str(port), **env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    service = Service(process, port, log)
    try:
        yield service
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
