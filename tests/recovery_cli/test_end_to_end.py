"""The command handler end to end through the real CLI: the seed's invocations, success,
failure, cooldown, dry run, disable."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.support.cli import Workspace, base_config, command_component


def flag_config(
    ws: Workspace, flag: Path, fix: list[str] | None = None, **defaults: object
) -> None:
    component = command_component(
        ["test", "-f", str(flag)], {"restart_app": fix or ["touch", str(flag)]}
    )
    ws.write_config(base_config({"app": component}, **defaults))


def test_seed_invocations_run(ws: Workspace, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag_config(ws, flag)
    recovered = ws.run("recover", "--component", "app", "--strategy", "restart_app")
    assert recovered.returncode == 0, recovered.stderr
    assert flag.exists()
    history = ws.run("history", "--component", "app", "--last", "24h")
    assert history.returncode == 0 and "restart_app" in history.stdout
    status = ws.run("status")
    assert status.returncode == 0 and "app" in status.stdout and "healthy" in status.stdout
    metrics = ws.run("metrics", "--json")
    samples = json.loads(metrics.stdout)
    attempts = [s for s in samples if s["name"] == "infra_recovery_attempts_total"]
    assert attempts == [
        {
            "name": "infra_recovery_attempts_total",
            "labels": {"component": "app", "strategy": "restart_app", "outcome": "success"},
            "value": 1.0,
        }
    ]


def test_recover_success_is_audited_in_order(ws: Workspace, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag_config(ws, flag)
    result = ws.run("recover")
    assert result.returncode == 0, result.stderr
    trail = [
        (r["event"], r.get("outcome"), r.get("strategy"))
        for r in ws.records()
        if r["event"] != "state_changed"
    ]
    assert trail == [
        ("attempt", "started", "restart_app"),
        ("step", "success", "restart_app"),
        ("attempt", "success", "restart_app"),
    ]
    first = next(r for r in ws.records() if r["event"] == "attempt")
    for key in (
        "ts",
        "id",
        "event",
        "component",
        "strategy",
        "outcome",
        "trigger",
        "host",
        "pid",
        "attempt_id",
    ):
        assert key in first
    assert first["trigger"] == "cron"  # no terminal: the cron path


def test_healthy_component_writes_nothing(ws: Workspace, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag.touch()
    flag_config(ws, flag)
    result = ws.run("recover")
    assert result.returncode == 0
    assert ws.records() == []


def test_failed_recovery_then_cooldown_blocks(ws: Workspace, tmp_path: Path) -> None:
    flag_config(ws, tmp_path / "never", fix=["false"])
    first = ws.run("recover", "app")
    assert first.returncode == 1, first.stdout + first.stderr
    second = ws.run("recover", "app")
    assert second.returncode == 3, second.stdout + second.stderr
    blocked = ws.events("blocked", "app")
    assert len(blocked) == 1 and blocked[0]["reason"] == "cooldown"
    assert "cooling down" in second.stdout


def test_step_output_is_captured_in_the_audit_detail(ws: Workspace, tmp_path: Path) -> None:
    flag_config(ws, tmp_path / "never", fix=["sh", "-c", "echo disk is on fire >&2; exit 7"])
    ws.run("recover", "app")
    step = ws.events("step", "app")[0]
    assert step["outcome"] == "failed"
    assert step["error"] == "command_failed"
    assert "exit 7" in step["detail"] and "disk is on fire" in step["detail"]


def test_dry_run_changes_nothing_on_disk(ws: Workspace, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag_config(ws, flag)
    result = ws.run("recover", "--dry-run")
    assert result.returncode == 1, result.stderr  # still unhealthy: nothing was done
    assert "would run: touch" in result.stdout
    assert not flag.exists()
    assert not ws.state.exists()


def test_disable_blocks_until_enabled(ws: Workspace, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag_config(ws, flag)
    assert ws.run("disable", "app", "--for", "2h", "--reason", "maintenance").returncode == 0
    blocked = ws.run("recover", "app")
    assert blocked.returncode == 3 and "maintenance" in blocked.stdout
    assert not flag.exists()
    assert ws.run("enable", "app").returncode == 0
    assert ws.run("recover", "app").returncode == 0
    events = [r["event"] for r in ws.records() if r["event"] != "state_changed"]
    assert events[:3] == ["disabled", "blocked", "enabled"]


def test_state_dir_is_private(ws: Workspace, tmp_path: Path) -> None:
    flag_config(ws, tmp_path / "flag")
    ws.run("recover")
    assert os.stat(ws.state).st_mode & 0o777 == 0o700
    for path in (ws.state / "audit").glob("*.jsonl"):
        assert path.stat().st_mode & 0o777 == 0o600
    assert (ws.state / "state.json").stat().st_mode & 0o777 == 0o600


def test_dependency_down_blocks_dependent(ws: Workspace, tmp_path: Path) -> None:
    base = command_component(["false"], {"fix_base": ["false"]})
    app = command_component(
        ["false"], {"fix_app": ["touch", str(tmp_path / "ran")]}, depends_on=["base"]
    )
    ws.write_config(base_config({"app": app, "base": base}))
    result = ws.run("recover", "--json")
    reports = {r["component"]: r for r in json.loads(result.stdout)}
    assert reports["base"]["outcome"] == "failed"
    assert reports["app"]["reason"] == "dependency"
    assert not (tmp_path / "ran").exists()
    assert [r["component"] for r in json.loads(result.stdout)] == [
        "base",
        "app",
    ]  # dependency order
    assert result.returncode == 1


def test_running_recovery_of_the_same_component_blocks_with_lock_held(
    ws: Workspace, tmp_path: Path
) -> None:
    from recovery_cli.locking import FileLock

    component = command_component(["false"], {"fix": ["touch", str(tmp_path / "ran")]})
    ws.write_config(base_config({"app": component}, lock_wait_seconds=0.2))
    (ws.state / "locks").mkdir(parents=True)
    with FileLock(ws.state / "locks" / "app.lock") as held:
        assert held.acquire(0)
        result = ws.run("recover", "app")
    assert result.returncode == 3
    assert ws.events("blocked", "app")[0]["reason"] == "lock_held"
    assert not (tmp_path / "ran").exists()


def test_on_failure_chain_is_chosen_by_failure_type(ws: Workspace, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    probe = ["sh", "-c", f"test -f {flag} && exit 0; exit 2"]
    component = command_component(probe, {"general": ["false"], "special": ["touch", str(flag)]})
    component["chain"] = ["general"]
    component["on_failure"] = {"probe_critical": ["special"]}
    ws.write_config(base_config({"app": component}))
    assert ws.run("recover", "app").returncode == 0
    assert [r["strategy"] for r in ws.events("step", "app")] == ["special"]
