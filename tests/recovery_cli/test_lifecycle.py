"""The incident lifecycle over many runs: honest cap accounting, thresholds, flapping, blast
radius, break-glass, manual vs automatic, and alerts that fire, repeat and resolve in a real
Alertmanager."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import alertmanager
from tests.support.alertmanager import Alertmanager, running_alertmanager
from tests.support.cli import Workspace, base_config, command_component
from tests.support.core import make_core

needs_alertmanager = pytest.mark.skipif(
    not alertmanager.available(), reason="prometheus-alertmanager is not installed"
)


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[Alertmanager]:
    with running_alertmanager(tmp_path / "am", resolve_timeout="1s") as running:
        yield running


def flag_component(flag: Path, **extra: Any) -> dict[str, Any]:
    """Healthy while ``flag`` exists; the fix creates it."""
    return command_component(["test", "-f", str(flag)], {"fix": ["touch", str(flag)]}, **extra)


def status_of(
    ws: Workspace, name: str = "app", env: dict[str, str] | None = None
) -> dict[str, Any]:
    rows = json.loads(ws.run("status", "--json", env=env).stdout)
    return next(r for r in rows if r["component"] == name)


def wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


@needs_alertmanager
def test_a_pending_approval_costs_no_cap_and_pages_once(
    ws: Workspace, tmp_path: Path, manager: Alertmanager
) -> None:
    flag = tmp_path / "flag"
    component = flag_component(flag)
    component["strategies"]["fix"]["approval"] = "required"
    config = base_config({"app": component})
    config["alerting"] = {"alertmanager_url": manager.url, "repeat_seconds": 300}
    ws.write_config(config)
    codes = [ws.run("recover").returncode for _ in range(10)]
    assert codes == [3] * 10
    assert len(ws.events("approval_requested")) == 1
    assert not ws.events("attempt"), "waiting for a person is not an attempt"
    row = status_of(ws)
    assert row["attempts_last_hour"] == 0 and row["hourly_cap"] == 3
    assert row["state"] == "awaiting_approval"
    firing = wait_for(lambda: manager.firing(component="app"))
    assert [a["labels"]["alertname"] for a in firing] == ["RecoveryApprovalPending"]
    (approval_id,) = row["pending_approvals"]
    approved = ws.run("approve", approval_id, "--as", "alice")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert flag.exists()
    assert wait_for(lambda: not manager.firing(component="app"))
    assert status_of(ws)["state"] == "healthy"


@needs_alertmanager
def test_blocked_while_down_pages_repeats_past_resolve_timeout_and_resolves(
    ws: Workspace, tmp_path: Path, manager: Alertmanager
) -> None:
    flag = tmp_path / "flag"
    config = base_config(
        {"app": command_component(["test", "-f", str(flag)], {"fix": ["false"]})},
        cooldown_seconds=0,
        max_attempts_per_hour=2,
    )
    config["alerting"] = {"alertmanager_url": manager.url, "repeat_seconds": 60}
    ws.write_config(config)
    assert [ws.run("recover").returncode for _ in range(3)] == [1, 1, 3]
    blocked = wait_for(lambda: manager.firing(component="app", state="blocked"))
    assert blocked and blocked[0]["labels"]["reason"] == "hourly_cap"
    assert blocked[0]["labels"]["alertname"] == "RecoveryBlockedWhileDown"
    time.sleep(2.5)  # past the Alertmanager's resolve_timeout (1s): endsAt keeps it active
    assert manager.firing(component="app", state="blocked")
    flag.touch()
    assert ws.run("recover").returncode == 0
    assert wait_for(lambda: not manager.firing(component="app"))


@needs_alertmanager
def test_the_same_failure_on_two_hosts_is_two_alerts(
    ws: Workspace, tmp_path: Path, manager: Alertmanager
) -> None:
    config = base_config({"app": command_component(["false"], {"fix": ["false"]})})
    config["alerting"] = {"alertmanager_url": manager.url}
    ws.write_config(config)
    for host in ("web-1", "web-2"):  # two machines: each its own state dir
        other = Workspace(tmp_path / host)
        other.root.mkdir()
        other.write_config(config)
        assert other.run("recover", env={"RECOVERY_HOST": host}).returncode == 1
    wait_for(lambda: len(manager.firing(component="app")) >= 2)
    alerts = manager.firing(component="app")
    assert sorted(a["labels"]["host"] for a in alerts) == ["web-1", "web-2"]


def test_failures_before_action_hold_the_first_runs(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    core = make_core(tmp_path, base_config({"app": flag_component(flag)}, failures_before_action=3))
    first, second = core.recover("app")[0], core.recover("app")[0]
    assert (first.outcome, second.outcome) == ("held", "held")
    assert not core.records("attempt")
    life = core.store.load_state().components["app"]
    assert life["state"] == "failing" and life["failures"] == 2
    third = core.recover("app")[0]
    assert third.outcome == "recovered" and flag.exists()


def test_a_flapping_component_is_escalated_not_restarted_again(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    config = base_config(
        {"app": flag_component(flag)},
        cooldown_seconds=0,
        max_attempts_per_hour=100,
        flap_max=3,
        flap_window_seconds=600,
    )
    core = make_core(tmp_path, config)
    outcomes = []
    for _ in range(5):  # down, restarted and up again, every two minutes
        flag.unlink(missing_ok=True)
        outcomes.append(core.recover("app")[0].outcome)
        core.clock.advance(60)
        core.recover("app")
        core.clock.advance(60)
    assert outcomes[:3] == ["recovered"] * 3
    assert outcomes[3:] == ["blocked", "blocked"]
    restarts = [r for r in core.records("attempt") if r["outcome"] == "started"]
    assert len(restarts) == 3
    life = core.store.load_state().components["app"]
    assert life["state"] == "escalated" and life["reason"] == "flapping"


@needs_alertmanager
def test_blast_radius_stops_automation_pages_once_and_lets_a_person_act(
    ws: Workspace, tmp_path: Path, manager: Alertmanager
) -> None:
    flags = {name: tmp_path / name for name in ("a", "b", "c", "d")}
    flags["d"].touch()
    components = {name: flag_component(flag) for name, flag in flags.items()}
    config = base_config(components, max_unhealthy=2)
    config["alerting"] = {"alertmanager_url": manager.url}
    ws.write_config(config)
    cron = ws.run("recover")
    assert cron.returncode == 3
    assert not any(flags[n].exists() for n in "abc")
    assert {r["reason"] for r in ws.events("blocked")} == {"blast_radius"}
    radius = wait_for(lambda: manager.firing(alertname="RecoveryBlastRadius"))
    assert len(radius) == 1
    person = ws.run("recover", "a", "--as", "alice")
    assert person.returncode == 0 and flags["a"].exists()


def test_blast_radius_counts_one_root_and_what_it_explains_as_one_failure(
    ws: Workspace, tmp_path: Path
) -> None:
    """``sys`` down, and ``redis``, ``chroma`` and ``app`` above it: one failure, under a
    ``max_unhealthy`` of 2, so automation fixes the root and then each dependent."""
    flags = {name: tmp_path / name for name in ("sys", "redis", "chroma", "app")}
    components = {name: flag_component(flag) for name, flag in flags.items()}
    components["redis"]["depends_on"] = components["chroma"]["depends_on"] = ["sys"]
    components["app"]["depends_on"] = ["redis", "chroma"]
    ws.write_config(base_config(components, max_unhealthy=2))

    cron = ws.run("recover")  # dependencies first: sys, then what it held down

    assert cron.returncode == 0, cron.stdout + cron.stderr
    assert all(flag.exists() for flag in flags.values())
    assert not [r for r in ws.events("blocked") if r["reason"] == "blast_radius"]


def test_break_glass_passes_the_cap_for_a_person_with_a_reason(ws: Workspace) -> None:
    config = base_config(
        {"app": command_component(["false"], {"fix": ["false"]})},
        cooldown_seconds=0,
        max_attempts_per_hour=1,
    )
    ws.write_config(config)
    assert ws.run("recover").returncode == 1
    assert ws.run("recover").returncode == 3  # the cap is full
    assert ws.run("recover", "app", "--override-limits", "--as", "alice").returncode == 2
    cron_style = ws.run("recover", "app", "--override-limits", "--reason", "x")
    assert cron_style.returncode == 2 and "for a person" in cron_style.stderr
    glass = ws.run("recover", "app", "--override-limits", "--reason", "db is fine", "--as", "alice")
    assert glass.returncode == 1, glass.stdout + glass.stderr
    started = [r for r in ws.events("attempt") if r["outcome"] == "started"]
    assert len(started) == 2
    assert started[-1]["operator"] == "alice" and started[-1]["override"] == "db is fine"
    metrics = ws.run("metrics").stdout
    assert 'infra_recovery_overrides_total{component="app"} 1.0' in metrics


def test_a_failed_manual_strategy_does_not_start_the_cooldown(ws: Workspace) -> None:
    component = command_component(["false"], {"reconnect": ["false"], "fix": ["false"]})
    ws.write_config(base_config({"app": component}, cooldown_seconds=600))
    manual = ws.run("recover", "--component", "app", "--strategy", "reconnect", "--as", "bob")
    assert manual.returncode == 1
    assert not ws.events("degraded_enter")
    cron = ws.run("recover")
    assert cron.returncode == 1, "the next cron run is not blocked by a cooldown"
    assert not ws.events("blocked")
    assert ws.run("recover").returncode == 3  # the cron chain's own failure does cool down


def test_recover_into_head_keeps_the_real_exit_code(ws: Workspace) -> None:
    from tests.support.cli import run_into_head

    names = {f"c{i}": command_component(["false"], {"fix": ["false"]}) for i in range(30)}
    ws.write_config(base_config(names))
    code, stderr = run_into_head(ws, "recover")
    assert code == 1, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_counters_never_decrease_when_day_files_are_pruned(tmp_path: Path) -> None:
    from recovery_cli.metrics import as_json, build_registry

    config = base_config(
        {"app": command_component(["false"], {"fix": ["false"]})},
        cooldown_seconds=0,
        max_attempts_per_hour=1000,
    )
    config["audit"] = {"retention_days": 2}
    core = make_core(tmp_path, config)

    def counters() -> dict[tuple[str, str], float]:
        rows = as_json(build_registry(core.config, core.store))
        return {
            (r["name"], json.dumps(r["labels"], sort_keys=True)): r["value"]
            for r in rows
            if r["name"].endswith(("_total", "_count", "_sum", "_bucket"))
        }

    seen: dict[tuple[str, str], float] = {}
    for _ in range(6):
        core.recover("app")
        core.clock.advance(86400)
        now = counters()
        for key, value in seen.items():
            assert now.get(key, 0) >= value, key
        seen = now
    assert len(core.store.audit.files()) <= 3, "old day files were pruned"
    attempts = [v for (n, _), v in seen.items() if n == "infra_recovery_attempts_total"]
    assert sum(attempts) == 6


@pytest.mark.skipif(not __import__("shutil").which("promtool"), reason="promtool not installed")
def test_the_exposition_passes_promtool(ws: Workspace, tmp_path: Path) -> None:
    import subprocess

    flag = tmp_path / "flag"
    component = flag_component(flag)
    ws.write_config(base_config({"app": component, "other": component}))
    ws.run("recover")
    ws.run("disable", "other", "--for", "1h", "--reason", "x")
    exposition = ws.run("metrics").stdout
    for name in (
        "infra_recovery_component_up",
        "infra_recovery_component_state",
        "infra_recovery_audit_corrupt_lines",
    ):
        assert name in exposition
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_prompt_holds_no_lock_and_times_out_leaving_the_approval(
    ws: Workspace, tmp_path: Path
) -> None:
    from tests.support.cli import child_env
    from tests.support.terminal import run_on_terminal

    flag = tmp_path / "flag"
    component = flag_component(flag)
    component["strategies"]["fix"]["approval"] = "required"
    ws.write_config(base_config({"app": component}, lock_wait_seconds=0.5))
    cron: list[Any] = []

    def meanwhile(output: bytes) -> None:
        if not cron and b"[y/N]" in output:
            cron.append(ws.run("recover", "app"))  # while the person is still deciding

    argv = ws.argv("recover", "app", "--prompt-timeout", "4")
    code, output = run_on_terminal(argv, child_env({"USER": "erin"}), meanwhile)
    assert cron, output.decode(errors="replace")
    assert cron[0].returncode == 3 and "lock_held" not in cron[0].stdout
    assert not [r for r in ws.events("blocked") if r["reason"] == "lock_held"]
    assert code == 3, output.decode(errors="replace")
    assert b"no answer" in output
    assert not flag.exists()
    assert len(ws.events("approval_requested")) == 1
    assert status_of(ws)["pending_approvals"], "the approval stays pending"


def test_approve_is_held_by_a_dependency_that_is_down(tmp_path: Path) -> None:
    """The approve path goes through the same gates as recover, dependencies included."""
    flag, db_flag = tmp_path / "flag", tmp_path / "db"
    component = flag_component(flag, depends_on=["db"])
    component["strategies"]["fix"]["approval"] = "required"
    db = command_component(["test", "-f", str(db_flag)], {"noop": ["false"]})
    db_flag.touch()
    core = make_core(tmp_path, base_config({"db": db, "app": component}))
    (report,) = core.recover("app")
    assert report.outcome == "awaiting_approval" and report.approval_id
    db_flag.unlink()
    approved = core.approve(report.approval_id, "alice")
    assert approved.outcome == "blocked" and approved.reason == "dependency"
    assert not flag.exists()
    assert core.store.load_state().approvals[report.approval_id].status == "pending"
