"""An adaptive chain against a real redis-server killed with -9 (``connection_failed``): the
`recovery` command tries first the strategy the trail says fixes it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from recovery_cli.success_rate import wilson
from tests.handlers.redis.test_cli import redis_config
from tests.support.cli import Workspace
from tests.support.redis_server import RedisServer
from tests.support.step_trail import seed_state_dir

pytestmark = pytest.mark.slow

RESTART_WORKS = {"restart_container": (10, 9), "reconnect": (10, 1)}


def adaptive_config(server: RedisServer, order: str) -> dict[str, Any]:
    config = redis_config(server, ["reconnect", "restart_container"])
    config["components"]["redis"]["chain_order"] = order
    return config


def new_steps(ws: Workspace, seeded: list[str]) -> list[tuple[str, str]]:
    return [(r["strategy"], r["outcome"]) for r in ws.events("step") if r["id"] not in seeded]


def test_restart_container_runs_first_when_it_fixed_9_of_10(
    server: RedisServer, ws: Workspace
) -> None:
    seeded = seed_state_dir(
        ws.state, "redis", "connection_failed", RESTART_WORKS, time.time() - 3600
    )
    server.kill9()
    ws.write_config(adaptive_config(server, "adaptive"))

    dry = ws.run("recover", "redis", "--dry-run")
    assert (
        "chain (adaptive): restart_container, reconnect (failure connection_failed)" in dry.stdout
    )
    assert "restart_container: 9 of 10 runs succeeded, Wilson low 0.596 (ranked)" in dry.stdout

    run = ws.run("recover", "redis")

    assert run.returncode == 0, run.stdout + run.stderr
    assert new_steps(ws, seeded) == [("restart_container", "success")]
    [started] = [r for r in ws.events("attempt", "redis") if r["outcome"] == "started"]
    assert started["failure_type"] == "connection_failed"
    assert started["strategy"] == "restart_container,reconnect"
    order = started["chain_order"]
    assert order["order"] == ["restart_container", "reconnect"]
    assert order["basis"]["reconnect"]["wilson_low"] == round(wilson(1, 10).low, 4)
    assert server.client().ping()


def test_the_configured_order_ignores_the_same_trail(server: RedisServer, ws: Workspace) -> None:
    seeded = seed_state_dir(
        ws.state, "redis", "connection_failed", RESTART_WORKS, time.time() - 3600
    )
    server.kill9()
    ws.write_config(adaptive_config(server, "configured"))

    run = ws.run("recover", "redis", "--json")

    assert run.returncode == 0, run.stdout + run.stderr
    assert new_steps(ws, seeded) == [("reconnect", "failed"), ("restart_container", "success")]
    [report] = json.loads(run.stdout)
    assert report["outcome"] == "recovered"
