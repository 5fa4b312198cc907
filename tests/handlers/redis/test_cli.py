"""End to end: the real `recovery` command against a real redis-server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.cli import Workspace, child_env
from tests.support.redis_server import RedisServer
from tests.support.terminal import run_on_terminal

pytestmark = pytest.mark.slow


def redis_config(
    server: RedisServer, chain: list[str], **strategies: dict[str, Any]
) -> dict[str, Any]:
    component = {
        "kind": "redis",
        "settings": {"url": server.url, "connect_timeout_seconds": 1, "socket_timeout_seconds": 1},
        "service": {
            "method": "command",
            "restart": server.restart_argv(),
            "ready_timeout_seconds": 10,
        },
        "chain": chain,
        "strategies": {"reconnect": {"params": {"max_wait_seconds": 0.5}}, **strategies},
    }
    return {
        "version": 1,
        "defaults": {"retry": {"attempts": 1}, "cooldown_seconds": 0, "max_attempts_per_hour": 20},
        "components": {"redis": component},
    }


def steps(ws: Workspace) -> list[tuple[str, str]]:
    return [
        (r["event"], r["strategy"])
        for r in ws.records()
        if r["event"] in {"step", "approval_requested", "approved"}
    ]


def test_recover_after_kill_9_exits_0_and_keeps_the_data(
    server: RedisServer, admin: redis.Redis, ws: Workspace
) -> None:
    admin.set("order:1", "paid")
    server.kill9()
    ws.write_config(redis_config(server, ["reconnect", "restart_container"]))

    run = ws.run("recover", "redis")

    assert run.returncode == 0, run.stdout + run.stderr
    assert admin.get("order:1") == b"paid"  # AOF with appendfsync always survives kill -9
    assert [(r["strategy"], r["outcome"]) for r in ws.events("step")] == [
        ("reconnect", "failed"),
        ("restart_container", "success"),
    ]


def test_escalation_reconnect_fails_flush_waits_for_approval_then_restart(
    server: RedisServer, ws: Workspace
) -> None:
    server.kill9()
    flush = {"approval": "required", "params": {"patterns": ["cache:*"], "mode": "delete"}}
    ws.write_config(
        redis_config(
            server, ["reconnect", "flush_corrupted", "restart_container"], flush_corrupted=flush
        )
    )

    first = ws.run("recover", "redis")
    assert first.returncode == 3, first.stdout + first.stderr
    [pending] = json.loads(ws.run("approve", "--json").stdout)
    assert pending["strategy"] == "flush_corrupted"

    approved = ws.run("approve", pending["id"])

    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert steps(ws) == [
        ("step", "reconnect"),
        ("approval_requested", "flush_corrupted"),
        ("approved", "flush_corrupted"),
        ("step", "flush_corrupted"),
        ("step", "restart_container"),
    ]
    assert ws.events("step")[-1]["outcome"] == "success"
    assert ws.events("attempt")[-1]["outcome"] == "success"


def test_leaked_keys_filling_memory_are_flushed_after_approval_and_restored(
    server: RedisServer, admin: redis.Redis, ws: Workspace
) -> None:
    for index in range(40):
        admin.set(f"cache:{index}", b"x" * 50_000)
    admin.set("session:1", "keep")
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", int(admin.info("memory")["used_memory"]) - 100_000)
    flush = {"approval": "required", "params": {"patterns": ["cache:*"], "mode": "delete"}}
    ws.write_config(redis_config(server, ["reconnect", "flush_corrupted"], flush_corrupted=flush))

    assert ws.run("recover", "redis").returncode == 3
    [pending] = json.loads(ws.run("approve", "--json").stdout)
    fixed = ws.run("recover", "redis", "--yes")

    would_lose = pending["plan"]["would_lose"]
    assert would_lose["count"] == 40
    assert sorted(would_lose["items"]) == sorted(f"cache:{i}" for i in range(40))
    assert would_lose["binds"] == {"patterns": ["cache:*"], "mode": "delete", "max_keys": 10000}
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert list(admin.scan_iter(match="cache:*")) == [] and admin.get("session:1") == b"keep"
    step = ws.events("step", "redis")[-1]
    backup = Path(step["data"]["lost"]["where"])
    assert step["data"]["lost"]["count"] == 0 and "restore_flushed" in step["data"]["lost"]["undo"]
    assert backup.is_file() and backup.name == step["data"]["backup"]
    admin.config_set("maxmemory", 0)
    undo = ws.run("recover", "redis", "--strategy", "restore_flushed", "--force")
    assert undo.returncode == 0, undo.stdout + undo.stderr
    assert len(list(admin.scan_iter(match="cache:*"))) == 40


def test_dry_run_through_the_cli_touches_nothing(
    server: RedisServer, admin: redis.Redis, ws: Workspace
) -> None:
    admin.set("cache:leak", "v")
    flush = {"params": {"patterns": ["cache:*"], "mode": "delete"}}
    ws.write_config(redis_config(server, ["flush_corrupted"], flush_corrupted=flush))

    run = ws.run("recover", "redis", "--strategy", "flush_corrupted", "--force", "--dry-run")

    assert run.returncode == 0, run.stdout + run.stderr
    assert admin.get("cache:leak") == b"v"
    assert not (ws.state / "redis").exists() or not list((ws.state / "redis").glob("flush-*"))


def test_recovery_test_runs_the_redis_preflight(server: RedisServer, ws: Workspace) -> None:
    flush = {"params": {"patterns": ["cache:*"], "mode": "delete"}}
    ws.write_config(
        redis_config(
            server, ["reconnect", "flush_corrupted", "restart_container"], flush_corrupted=flush
        )
    )
    healthy = ws.run("test")
    server.kill9()
    down = ws.run("test")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert down.returncode == 1 and "reachable" in down.stdout


def test_status_and_dry_run_of_a_live_redis_write_nothing(
    ws: Workspace, server: RedisServer
) -> None:
    ws.write_config(redis_config(server, ["reconnect"]))
    assert ws.run("status").returncode == 0
    assert ws.run("recover", "--dry-run", "--force").returncode == 0
    assert not ws.state.exists()
    ws.state.mkdir(mode=0o700)
    assert ws.run("status").returncode == 0
    assert list(ws.state.iterdir()) == [], "status keeps no probe state"


def test_key_names_are_shown_as_text_never_as_markup_or_terminal_escapes(
    server: RedisServer, admin: redis.Redis, ws: Workspace
) -> None:
    """Anyone who can write a key could otherwise crash the table (a stray ``[/]``) or forge
    what the approver reads (colours, a retitled window)."""
    for key in ("leak:[/]", "leak:[bold red]BOLD", "leak:\x1b[31mRED\x1b]0;TITLE\x07"):
        admin.set(key, "v")
    flush = {"params": {"patterns": ["leak:*"], "mode": "delete"}}
    ws.write_config(redis_config(server, ["flush_corrupted"], flush_corrupted=flush))
    argv = ws.argv("recover", "redis", "--strategy", "flush_corrupted", "--force", "--dry-run")

    code, output = run_on_terminal(argv, child_env({"COLUMNS": "400"}), lambda _: None)

    text = output.decode(errors="replace")
    assert code == 0, text
    assert "leak:[/]" in text and "leak:[bold red]BOLD" in text
    assert "leak:\\x1b[31mRED\\x1b]0;TITLE\\x07" in text
    assert b"\x1b]0;" not in output and b"\x07" not in output
