"""``recovery check`` as Icinga or Naemon run it: a real redis-server up, degraded, down and
frozen; exit codes and perfdata by the Monitoring Plugins convention."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from tests.support.cli import Workspace, base_config, command_component
from tests.support.net import free_port
from tests.support.redis_server import running_redis

pytestmark = pytest.mark.slow

PERFDATA = re.compile(r"^[A-Za-z0-9_.-]+=-?[0-9.e+-]+[a-zA-Z%]*(;[0-9.e+-]*){0,4}$")


def redis_component(url: str, **settings: object) -> dict[str, object]:
    return {
        "kind": "redis",
        "settings": {"url": url, **settings},
        "chain": ["reconnect"],
    }


def parse(line: str) -> tuple[str, list[str]]:
    text, _, perf = line.partition(" | ")
    return text, perf.split()


def test_a_healthy_redis_is_ok_with_valid_perfdata(ws: Workspace, tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis") as server:
        ws.write_config(base_config({"redis": redis_component(server.url)}))
        result = ws.run("check", "redis")

    assert result.returncode == 0, result.stdout + result.stderr
    text, perf = parse(result.stdout.strip())
    assert text.startswith("RECOVERY OK - redis healthy")
    assert all(PERFDATA.match(item) for item in perf), perf
    names = [p.split("=")[0] for p in perf]
    assert names[:3] == ["probe_seconds", "attempts_last_hour", "cooldown_seconds"]
    assert not (ws.state / "audit").exists()  # a check writes nothing


def test_a_replica_whose_link_is_down_is_a_warning(ws: Workspace, tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis", f"replicaof 127.0.0.1 {free_port()}") as server:
        ws.write_config(
            base_config({"redis": redis_component(server.url, expected_role="replica")})
        )
        result = ws.run("check", "redis")

    assert result.returncode == 1, result.stdout
    assert result.stdout.startswith("RECOVERY WARNING - redis degraded (replica_link_down)")


def test_a_redis_that_does_not_answer_is_critical(ws: Workspace) -> None:
    ws.write_config(base_config({"redis": redis_component(f"redis://127.0.0.1:{free_port()}/0")}))
    result = ws.run("check", "redis")

    assert result.returncode == 2, result.stdout
    assert result.stdout.startswith("RECOVERY CRITICAL - redis down")


def test_a_frozen_redis_past_the_timeout_is_unknown(ws: Workspace, tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis") as server:
        ws.write_config(base_config({"redis": redis_component(server.url)}))
        server.signal(signal.SIGSTOP)
        try:
            result = ws.run("check", "redis", "--timeout", "1", timeout=60)
        finally:
            server.signal(signal.SIGCONT)

    assert result.returncode == 3, result.stdout
    assert result.stdout.startswith("RECOVERY UNKNOWN - redis down (")


def test_what_keeps_the_plugin_from_telling_is_unknown_never_critical(ws: Workspace) -> None:
    ws.write_config(base_config({"app": command_component(["true"], {"fix": ["true"]})}))
    unknown_component = ws.run("check", "nope")
    bad_flag = ws.run("check", "app", "--bogus")
    bad_timeout = ws.run("check", "app", "--timeout", "0")
    ws.config.write_text("version: 1\ncomponents: {}\n")
    broken_config = ws.run("check", "app")

    for result in (unknown_component, bad_flag, bad_timeout, broken_config):
        assert result.returncode == 3, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
    assert unknown_component.stdout.startswith("RECOVERY UNKNOWN - unknown component 'nope'")
    assert broken_config.stdout.startswith("RECOVERY UNKNOWN - ")


def test_a_command_component_maps_its_exit_codes(ws: Workspace, tmp_path: Path) -> None:
    ws.write_config(
        base_config(
            {
                "ok": command_component(["true"], {"fix": ["true"]}),
                "warn": command_component(["sh", "-c", "exit 1"], {"fix": ["true"]}),
                "down": command_component(["sh", "-c", "exit 2"], {"fix": ["true"]}),
            }
        )
    )
    codes = {name: ws.run("check", name).returncode for name in ("ok", "warn", "down")}
    assert codes == {"ok": 0, "warn": 1, "down": 2}
