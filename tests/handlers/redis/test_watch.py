"""``recovery watch`` against a real redis-server: a frozen server is found within the
interval plus the probe timeout and recovered through the chain."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time

import pytest
import redis
import yaml

from tests.support.cli import Workspace
from tests.support.redis_server import REDIS_SERVER, RedisServer

pytestmark = pytest.mark.slow


def replace_frozen(server: RedisServer) -> list[str]:
    """Kill whatever copy runs (a frozen one answers nothing but holds the port), wait for
    the port, start the same config daemonized."""
    script = (
        f'pid=$(cat {server.pidfile} 2>/dev/null); [ -n "$pid" ] && kill -9 "$pid";'
        f' while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.02; done;'
        f" exec {REDIS_SERVER} {server.config_file} --daemonize yes"
    )
    return ["sh", "-c", script]


def test_a_frozen_server_is_found_within_interval_and_probe_timeout_and_replaced(
    ws: Workspace, server: RedisServer
) -> None:
    component = {
        "kind": "redis",
        "settings": {"url": server.url, "connect_timeout_seconds": 1, "socket_timeout_seconds": 1},
        "service": {"method": "command", "restart": replace_frozen(server)},
        "chain": ["restart_container"],
        "probe_timeout_seconds": 1,
    }
    config = {
        "version": 1,
        "defaults": {"cooldown_seconds": 0, "retry": {"attempts": 1}},
        "components": {"redis": component},
    }
    ws.config.write_text(yaml.safe_dump(config))
    proc = ws.popen("watch", "--interval", "1")
    try:
        time.sleep(2)  # a healthy first run
        frozen = server.pid()
        assert frozen is not None
        server.signal(signal.SIGSTOP)
        stopped = time.monotonic()

        replaced = _wait_for_other_pid(server, frozen, timeout=20)
        took = time.monotonic() - stopped
        _wait_for_attempt_end(ws, timeout=20)  # the new server answers before the step ends
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    assert replaced and server.client().ping()
    assert took < 1 * 1.1 + 1 + 5, took  # interval (+ jitter), probe timeout, the restart
    attempt = [r for r in ws.events("attempt", "redis") if r["outcome"] == "started"][-1]
    assert (attempt["failure_type"], attempt["trigger"]) == ("timeout", "watch")
    assert ws.events("attempt", "redis")[-1]["outcome"] == "success"


def _wait_for_attempt_end(ws: Workspace, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attempts = ws.events("attempt", "redis")
        if attempts and attempts[-1]["outcome"] != "started":
            return
        time.sleep(0.05)


def _wait_for_other_pid(server: RedisServer, old: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = server.pid()
        if pid not in (None, old):
            with contextlib.suppress(redis.RedisError):  # still starting
                if server.client().ping():
                    return True
        time.sleep(0.05)
    subprocess.run(["kill", "-CONT", str(old)], check=False)
    return False
