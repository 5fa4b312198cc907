"""A real ``recovery serve`` (or ``watch --listen``) process on a free loopback port, and an
HTTP client that speaks to it with a chosen token."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.cli import Lines, Workspace, base_config, command_component
from tests.support.net import free_port

READ_TOKEN = "read-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"
BOT_TOKEN = "alertmanager-token-0123456789"
TOKEN_ENV = {
    "TEST_READ_TOKEN": READ_TOKEN,
    "TEST_ADMIN_TOKEN": ADMIN_TOKEN,
    "TEST_BOT_TOKEN": BOT_TOKEN,
}


def api_section(requests: int = 100, **extra: Any) -> dict[str, Any]:
    """An ``api:`` block with a read token (grafana), an admin token (oncall) and a
    recover token for Alertmanager (alertmanager)."""
    section: dict[str, Any] = {
        "tokens": [
            {"name": "grafana", "env": "TEST_READ_TOKEN", "role": "read"},
            {"name": "oncall", "env": "TEST_ADMIN_TOKEN", "role": "admin"},
            {"name": "alertmanager", "env": "TEST_BOT_TOKEN", "role": "recover"},
        ],
        "rate_limit": {"requests": requests, "per_seconds": 60},
    }
    section.update(extra)
    return section


@dataclass
class ApiProcess:
    proc: subprocess.Popen[str]
    lines: Lines
    base_url: str

    def client(self, token: str | None = ADMIN_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60)

    def get(self, path: str, token: str | None = READ_TOKEN, **params: Any) -> httpx.Response:
        with self.client(token) as client:
            return client.get(path, params=params)

    def post(self, path: str, body: Any = None, token: str | None = ADMIN_TOKEN) -> httpx.Response:
        with self.client(token) as client:
            return client.post(path, json=body)

    def stop(self) -> int:
        """SIGTERM, then the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@contextlib.contextmanager
def running_api(
    ws: Workspace,
    *args: str,
    command: str = "serve",
    env: Mapping[str, str] | None = None,
) -> Iterator[ApiProcess]:
    port = free_port()
    proc = ws.popen(
        command, "--listen", f"127.0.0.1:{port}", *args, env={**TOKEN_ENV, **(env or {})}
    )
    api = ApiProcess(proc, Lines(proc), f"http://127.0.0.1:{port}")
    try:
        api.lines.wait_for("API listening", timeout=30)
        yield api
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def app_config(flag: Path, fix: list[str] | None = None, **api: Any) -> dict[str, Any]:
    """One ``kind: command`` component (probe: ``flag`` exists; fix: ``fix``, default
    touching it), no cooldown, a cap of 50, and ``api_section(**api)``."""
    component = command_component(["test", "-f", str(flag)], {"fix": fix or ["touch", str(flag)]})
    config = base_config({"app": component}, cooldown_seconds=0, max_attempts_per_hour=50)
    config["api"] = api_section(**api)
    return config


def wait_for(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def close_streams(proc: subprocess.Popen[str]) -> None:
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
