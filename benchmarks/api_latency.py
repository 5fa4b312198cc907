"""Latency of the HTTP API: `recovery serve` on a private state dir, one keep-alive client.

    .venv/bin/python benchmarks/api_latency.py --requests 200

Starts `recovery serve` on a free loopback port with one healthy `kind: command` component
(its probe is `true`) and an admin token, then times each call in turn: `GET /healthz`,
`GET /api/v1/status?probe=false`, `GET /api/v1/status` (one probe), `GET /api/v1/history`,
`POST .../recover` (a probe; healthy, so nothing runs) and `POST /api/v1/alertmanager`
(answered as a duplicate after the first). Prints median and p90 per call, in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

RECOVERY = str(Path(sys.executable).with_name("recovery"))
TOKEN = "benchmark-admin-token-0123456789"
CONFIG = """version: 1
defaults: {max_attempts_per_hour: 1000, cooldown_seconds: 0}
components:
  app:
    kind: command
    settings: {probe: ["true"]}
    chain: [fix]
    strategies: {fix: {params: {command: ["true"]}}}
api:
  tokens: [{name: bench, env: BENCH_TOKEN, role: admin}]
  rate_limit: {requests: 10000, per_seconds: 1}
"""
ALERT = {
    "version": "4",
    "status": "firing",
    "alerts": [{"status": "firing", "labels": {"alertname": "AppDown", "component": "app"}}],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit("recovery serve did not start")


def timed(call: Callable[[], httpx.Response], count: int) -> tuple[float, float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        answer = call()
        samples.append((time.perf_counter() - started) * 1000)
        if answer.status_code >= 400:
            raise SystemExit(f"{answer.status_code}: {answer.text}")
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="api-latency-") as tmp:
        root = Path(tmp)
        (root / "config.yml").write_text(CONFIG)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [RECOVERY, "--config", str(root / "config.yml"), "--state-dir", str(root / "s")]
        env = {**os.environ, "BENCH_TOKEN": TOKEN}
        server = subprocess.Popen(
            [*argv, "serve", "--listen", f"127.0.0.1:{port}"],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(url)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
                calls: dict[str, Callable[[], httpx.Response]] = {
                    "GET /healthz": lambda: client.get("/healthz"),
                    "GET /api/v1/status?probe=false": lambda: client.get(
                        "/api/v1/status", params={"probe": "false"}
                    ),
                    "GET /api/v1/status (probe)": lambda: client.get("/api/v1/status"),
                    "GET /api/v1/history?limit=50": lambda: client.get(
                        "/api/v1/history", params={"limit": 50}
                    ),
                    "POST /api/v1/components/app/recover": lambda: client.post(
                        "/api/v1/components/app/recover"
                    ),
                    "POST /api/v1/alertmanager": lambda: client.post(
                        "/api/v1/alertmanager", json=ALERT
                    ),
                }
                print(f"{'call':40} {'median ms':>10} {'p90 ms':>8}  ({args.requests} each)")
                for name, call in calls.items():
                    median, p90 = timed(call, args.requests)
                    print(f"{name:40} {median:10.2f} {p90:8.2f}")
        finally:
            server.terminate()
            server.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
