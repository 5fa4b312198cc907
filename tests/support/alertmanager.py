"""A private Alertmanager (Debian ``prometheus-alertmanager``) on a free loopback port, with
its own storage dir and gossip off; alerts read back from ``/api/v2/alerts``."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.net import free_port

BINARY = "prometheus-alertmanager"
CONFIG = """\
global:
  resolve_timeout: {resolve_timeout}
route:
  receiver: 'null'
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: 'null'
"""


@dataclass
class Alertmanager:
    url: str
    process: subprocess.Popen[bytes]

    def alerts(self, active: bool | None = True) -> list[dict[str, Any]]:
        query = "" if active is None else f"?active={'true' if active else 'false'}"
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts{query}", timeout=5) as answer:
            alerts: list[dict[str, Any]] = json.load(answer)
        return alerts

    def post(self, alerts: list[dict[str, Any]]) -> None:
        """``POST /api/v2/alerts``: each alert a dict of labels, annotations, startsAt, endsAt."""
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts",
            data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200

    def firing(self, **labels: str) -> list[dict[str, Any]]:
        """Active alerts whose labels include ``labels``, ended or not by their endsAt."""
        return [
            a
            for a in self.alerts(active=True)
            if a["status"]["state"] == "active"
            and all(a["labels"].get(k) == v for k, v in labels.items())
        ]


def available() -> bool:
    return shutil.which(BINARY) is not None


@contextlib.contextmanager
def running_alertmanager(
    directory: Path, resolve_timeout: str = "5m", config_text: str | None = None
) -> Iterator[Alertmanager]:
    """``config_text`` replaces the default config (one 'null' receiver)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "am.yml"
    config.write_text(config_text or CONFIG.format(resolve_timeout=resolve_timeout))
    port = free_port()
    log = (directory / "log").open("wb")
    process = subprocess.Popen(
        [
            BINARY,
            f"--config.file={config}",
            f"--storage.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    manager = Alertmanager(f"http://127.0.0.1:{port}", process)
    try:
        _wait_ready(manager)
        yield manager
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(manager: Alertmanager, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if manager.process.poll() is not None:
            raise RuntimeError("alertmanager exited during start-up")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{manager.url}/-/ready", timeout=1) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("alertmanager did not become ready")
