"""End to end: the real ``recovery`` command on the host's own processes and files."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Workspace, base_config
from tests.support.daemons import RELAXED, alive
from tests.support.tmpfs import mounted_tmpfs

pytestmark = pytest.mark.slow

SHIPPED_CONFIG = Path(__file__).resolve().parents[3] / "recovery_config.yml"


def system_config(
    settings: Mapping[str, Any], chain: list[str], **strategies: Any
) -> dict[str, Any]:
    component = {
        "kind": "system",
        "settings": dict(settings),
        "chain": chain,
        "on_failure": {"disk_pressure": ["disk_cleanup"], "process_down": ["process_restart"]},
        "strategies": strategies,
    }
    return base_config({"system": component}, cooldown_seconds=0, max_attempts_per_hour=20)


def test_killed_process_comes_back_after_approval(ws: Workspace, spawn: Any) -> None:
    daemon = spawn("worker")
    old_pid = daemon.pid
    settings = {
        **RELAXED,
        "processes": [{"name": "worker", "pidfile": str(daemon.pidfile), "grace_seconds": 2}],
    }
    ws.write_config(
        system_config(settings, ["process_restart"], process_restart={"approval": "required"})
    )
    healthy = ws.run("recover", "system")  # the probe records how the worker was started
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    os.kill(old_pid, signal.SIGKILL)
    daemon.proc.wait(5)

    blocked = ws.run("recover", "system")
    pending = json.loads(ws.run("approve", "--json").stdout)
    approved = ws.run("approve", pending[0]["id"], "--as", "alice")

    assert blocked.returncode == 3, blocked.stdout + blocked.stderr
    assert [p["strategy"] for p in pending] == ["process_restart"]
    assert approved.returncode == 0, approved.stdout + approved.stderr
    new_pid = daemon.pid
    assert new_pid != old_pid and alive(new_pid)
    assert daemon.started()["marker"] == "marker-worker"  # recorded environment reused
    assert ws.events("approved", "system")[-1]["operator"] == "alice"
    [step] = [r for r in ws.events("step", "system") if r["strategy"] == "process_restart"]
    assert step["outcome"] == "success" and str(new_pid) in step["detail"]
    assert ws.events("attempt", "system")[0]["failure_type"] == "process_down"


def _old_file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (time.time() - 7200, time.time() - 7200))
    return path


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk") as point:
        yield point


def test_full_disk_cleaned_with_every_path_in_the_audit(
    ws: Workspace, small_disk: Path, tmp_path: Path
) -> None:
    junk = [_old_file(small_disk / f"spool/part{i}.tmp", 250_000) for i in range(3)]
    canary = _old_file(tmp_path / "outside" / "canary.tmp", 10)
    (small_disk / "spool" / "escape").symlink_to(canary.parent)
    settings = {**RELAXED, "disk": {"paths": [str(small_disk)], "max_used_percent": 50}}
    params = {"roots": [str(small_disk)], "patterns": ["*.tmp"], "min_age_seconds": 3600}
    ws.write_config(system_config(settings, ["disk_cleanup"], disk_cleanup={"params": params}))

    dry = ws.run("recover", "system", "--dry-run")
    assert all(path.exists() for path in junk)
    run = ws.run("recover", "system")

    assert dry.returncode == 1, dry.stdout + dry.stderr  # still full: nothing was done
    assert "would remove 3 files, 750000 B" in dry.stdout
    assert run.returncode == 0, run.stdout + run.stderr
    assert not any(path.exists() for path in junk) and canary.exists()
    [step] = [r for r in ws.events("step", "system") if r["strategy"] == "disk_cleanup"]
    assert step["outcome"] == "success"
    for path in junk:
        assert str(path) in step["detail"]
    assert "750000 B" in step["detail"]


def test_recovery_test_reports_every_system_strategy_on_the_shipped_config(ws: Workspace) -> None:
    ws.config.write_text(SHIPPED_CONFIG.read_text())
    run = ws.run("test", "--json")
    rows = [row for row in json.loads(run.stdout) if row["component"] == "system"]
    strategies = {row["name"].split(":", 1)[0] for row in rows}
    assert {"disk_cleanup", "memory_gc", "file_handle_cleanup", "process_restart"} <= strategies
    roots = {row["name"]: row for row in rows if row["name"].startswith("disk_cleanup: root")}
    assert set(roots) == {"disk_cleanup: root /tmp", "disk_cleanup: root /var/tmp"}
    assert all(row["ok"] for row in roots.values())


def test_process_restarted_through_its_service_block(
    ws: Workspace, spawn: Any, tmp_path: Path
) -> None:
    daemon = spawn("svc")
    old_pid = daemon.pid
    restart = f"{sys.executable} {tmp_path / 'daemon.py'} {daemon.pidfile} {daemon.info} plain 0"
    config = system_config(
        {
            **RELAXED,
            "processes": [{"name": "svc", "pidfile": str(daemon.pidfile), "restart": "service"}],
        },
        ["process_restart"],
    )
    config["components"]["system"]["service"] = {
        "method": "command",
        "restart": ["sh", "-c", f"{restart} >/dev/null 2>&1 &"],
        "ready_timeout_seconds": 10,
    }
    ws.write_config(config)
    os.kill(old_pid, signal.SIGKILL)
    daemon.proc.wait(5)

    run = ws.run("recover", "system")

    assert run.returncode == 0, run.stdout + run.stderr
    assert daemon.pid != old_pid and alive(daemon.pid)
    [step] = [r for r in ws.events("step", "system") if r["strategy"] == "process_restart"]
    assert step["outcome"] == "success" and "healthy again" in step["detail"]
