"""The system handler against the real host: real processes, real limits, a real tmpfs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from recovery_cli.config import ServiceConfig
from recovery_cli.handlers.base import ComponentContext, Health, ServiceControl, StrategyContext
from recovery_cli.handlers.system.handler import SystemHandler
from recovery_cli.handlers.system.settings import validate as validate_system
from recovery_cli.service import build_service
from tests.support.daemons import RELAXED, alive, wait_for


def handler_for(
    tmp_path: Path, settings: Mapping[str, Any], **params: Mapping[str, Any]
) -> SystemHandler:
    errors = validate_system(settings, params)
    assert errors == [], [(e.key, e.message) for e in errors]
    state = tmp_path / "state"
    state.mkdir(mode=0o700, exist_ok=True)
    context = ComponentContext(
        "system", settings, params, state, dict(os.environ), probe_timeout=10
    )
    return SystemHandler(context)


def run_strategy(
    handler: SystemHandler, name: str, dry_run: bool = False, service: ServiceControl | None = None
) -> Any:
    ctx = StrategyContext(
        handler.context,
        handler.context.params_for(name),
        None,
        timeout=30,
        dry_run=dry_run,
        service=service,
        deadline=time.monotonic() + 30,
    )
    return handler.strategies()[name](ctx)


def test_probe_reports_real_measurements(tmp_path: Path) -> None:
    import psutil

    result = handler_for(tmp_path, RELAXED).probe()
    assert result.health is Health.HEALTHY, result.detail
    assert abs(result.metrics["disk_used_percent:/"] - psutil.disk_usage("/").percent) < 1
    allocated = int(Path("/proc/sys/fs/file-nr").read_text().split()[0])
    assert abs(result.metrics["file_handles_allocated"] - allocated) < 500
    assert result.metrics["memory_available_bytes"] > 0


def test_thresholds_trip_together_and_are_reported_together(tmp_path: Path) -> None:
    settings = {
        "disk": {"paths": [str(tmp_path)], "min_free_bytes": 2**62},
        "memory": {"min_available_percent": 100},
        "file_handles": {"max_used_percent": 0},
    }
    result = handler_for(tmp_path, settings).probe()
    assert (result.health, result.failure_type) == (Health.DEGRADED, "disk_pressure")
    for failure in ("disk_pressure", "memory_pressure", "fd_exhaustion"):
        assert failure in result.detail


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    point = tmp_path / "disk"
    point.mkdir()
    mounted = os.geteuid() == 0 and (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)], capture_output=True
        ).returncode
        == 0
    )
    if not mounted:
        pytest.skip("cannot mount a size-limited tmpfs here (needs root / CAP_SYS_ADMIN)")
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


def test_real_disk_pressure_then_cleanup_frees_it(tmp_path: Path, small_disk: Path) -> None:
    for index in range(4):
        (small_disk / f"chunk{index}.tmp").write_bytes(b"x" * 200_000)
    keep = small_disk / "data.db"
    keep.write_bytes(b"y" * 100_000)
    settings = {**RELAXED, "disk": {"paths": [str(small_disk)], "max_used_percent": 50}}
    params = {"roots": [str(small_disk)], "patterns": ["*.tmp"], "min_age_seconds": 0}
    handler = handler_for(tmp_path, settings, disk_cleanup=params)

    before = handler.probe()
    assert before.failure_type == "disk_pressure", before.detail
    result = run_strategy(handler, "disk_cleanup")
    after = handler.probe()

    assert result.ok and result.data["removed_count"] == 4 and result.data["bytes_freed"] == 800_000
    assert str(small_disk / "chunk0.tmp") in result.detail
    assert keep.exists()
    assert after.healthy, after.detail


def test_disk_cleanup_dry_run_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "scratch"
    root.mkdir()
    target = root / "old.tmp"
    target.write_text("x")
    os.utime(target, (1, 1))
    handler = handler_for(tmp_path, RELAXED, disk_cleanup={"roots": [str(root)]})
    result = run_strategy(handler, "disk_cleanup", dry_run=True)
    assert result.ok and target.exists()
    assert result.detail.startswith("would remove 1 files")
    assert result.data["removed"] == [{"path": str(target), "bytes": 1}]


def test_disk_cleanup_with_only_unsafe_roots_fails(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(tmp_path)
    handler = handler_for(tmp_path, RELAXED, disk_cleanup={"roots": [str(tmp_path / "link")]})
    result = run_strategy(handler, "disk_cleanup")
    assert (result.ok, result.failure_type) == (False, "unsafe_root")
    checks = handler.preflight("disk_cleanup")
    assert not checks[0].ok and "symlink" in checks[0].detail


def test_process_fd_exhaustion_then_soft_limit_raised(tmp_path: Path, spawn: Any) -> None:
    daemon = spawn("fdhog", "fds", 58)
    settings = {
        **RELAXED,
        "file_handles": {"max_process_used_percent": 80},
        "processes": [{"name": "fdhog", "pidfile": str(daemon.pidfile)}],
    }
    handler = handler_for(tmp_path, settings, file_handle_cleanup={"top": 3})

    before = handler.probe()
    result = run_strategy(handler, "file_handle_cleanup")
    after = handler.probe()

    assert before.failure_type == "fd_exhaustion" and "fdhog" in before.detail
    assert result.ok and "raised soft limit 64 -> 4096" in result.detail
    limits = Path(f"/proc/{daemon.pid}/limits").read_text()
    assert any(
        line.startswith("Max open files") and "4096                 4096" in line
        for line in limits.splitlines()
    )
    assert len(result.data["top_holders"]) == 3
    assert after.healthy, after.detail


def test_deleted_open_files_found_and_truncated(tmp_path: Path, spawn: Any) -> None:
    daemon = spawn("logger", "deleted", 3_000_000)
    settings = {
        **RELAXED,
        "deleted_open_files": {"max_bytes": 2_000_000},
        "processes": [{"name": "logger", "pidfile": str(daemon.pidfile)}],
    }
    params = {
        "truncate_deleted": True,
        "truncate_paths": [str(tmp_path)],
        "raise_soft_limit": False,
    }
    handler = handler_for(tmp_path, settings, file_handle_cleanup=params)

    before = handler.probe()
    assert before.failure_type == "deleted_open_files", before.detail
    dry = run_strategy(handler, "file_handle_cleanup", dry_run=True)
    assert dry.data["truncated"][0]["bytes"] == 3_000_000
    result = run_strategy(handler, "file_handle_cleanup")

    assert result.data["truncated"] == [
        {"pid": daemon.pid, "path": str(daemon.info) + ".data", "bytes": 3_000_000}
    ]
    data_file = str(daemon.info) + ".data (deleted)"
    fd_dir = f"/proc/{daemon.pid}/fd"
    held = [fd for fd in os.listdir(fd_dir) if os.readlink(f"{fd_dir}/{fd}") == data_file]
    assert [os.stat(f"{fd_dir}/{fd}").st_size for fd in held] == [0]


def test_memory_gc_signals_configured_processes(tmp_path: Path, spawn: Any) -> None:
    daemon = spawn("cache", "plain")
    settings = {
        **RELAXED,
        "processes": [
            {"name": "cache", "pidfile": str(daemon.pidfile), "reclaim_signal": "SIGUSR1"}
        ],
    }
    handler = handler_for(tmp_path, settings, memory_gc={"settle_seconds": 0})
    marker = Path(str(daemon.info) + ".usr1")

    dry = run_strategy(handler, "memory_gc", dry_run=True)
    assert dry.ok and "would send SIGUSR1" in dry.detail and not marker.exists()
    result = run_strategy(handler, "memory_gc")

    assert result.ok and f"sent SIGUSR1 to pid {daemon.pid}" in result.detail
    assert wait_for(marker.exists)
    assert result.data["available_before"] > 0 and result.data["available_after"] > 0


def test_memory_gc_with_nothing_configured_refuses(tmp_path: Path) -> None:
    handler = handler_for(tmp_path, RELAXED)
    assert run_strategy(handler, "memory_gc").failure_type == "not_configured"
    assert not handler.preflight("memory_gc")[0].ok


def test_process_down_then_respawned_with_recorded_argv_cwd_env(tmp_path: Path, spawn: Any) -> None:
    daemon = spawn("worker")
    first = daemon.started()
    settings = {
        **RELAXED,
        "processes": [{"name": "worker", "pidfile": str(daemon.pidfile), "grace_seconds": 2}],
    }
    handler = handler_for(tmp_path, settings)

    assert handler.probe().healthy
    identity = tmp_path / "state" / "system" / "processes" / "worker.json"
    assert (
        identity.stat().st_mode & 0o777 == 0o600 and identity.parent.stat().st_mode & 0o777 == 0o700
    )
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.proc.wait(5)
    down = handler.probe()
    result = run_strategy(handler, "process_restart")

    assert (down.health, down.failure_type) == (Health.DOWN, "process_down")
    assert result.ok, result.detail
    assert wait_for(lambda: daemon.started()["pid"] != first["pid"])
    second = daemon.started()
    assert second["cwd"] == first["cwd"] and second["marker"] == "marker-worker"
    assert result.data["restarted"][0]["new_pid"] == second["pid"] == daemon.pid
    assert handler.probe().healthy


def test_process_restart_never_signals_a_reused_pid(tmp_path: Path, spawn: Any) -> None:
    """The recorded PID now belongs to an unrelated process: it must survive."""
    daemon = spawn("victim")
    bystander = spawn("bystander")
    settings = {**RELAXED, "processes": [{"name": "victim", "pidfile": str(daemon.pidfile)}]}
    handler = handler_for(tmp_path, settings)
    assert handler.probe().healthy
    identity_file = tmp_path / "state" / "system" / "processes" / "victim.json"
    identity = json.loads(identity_file.read_text())
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.proc.wait(5)
    identity["pid"] = bystander.pid  # same number, different process (other start time)
    identity_file.write_text(json.dumps(identity))

    result = run_strategy(handler, "process_restart")

    assert result.ok and result.data["restarted"][0]["old"] == "not running"
    assert alive(bystander.pid)


def test_process_restart_through_service_control(tmp_path: Path, spawn: Any) -> None:
    daemon = spawn("svc")
    settings = {
        **RELAXED,
        "processes": [{"name": "svc", "pidfile": str(daemon.pidfile), "restart": "service"}],
    }
    handler = handler_for(tmp_path, settings)
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.proc.wait(5)
    assert run_strategy(handler, "process_restart").failure_type == "no_service_control"

    restart = [
        sys.executable,
        "-c",
        "import sys; open(sys.argv[1], 'w').write(str(__import__('os').getpid()))",
        str(daemon.pidfile),
    ]
    service = build_service(
        ServiceConfig(method="command", restart=restart, ready_timeout_seconds=2),
        handler.probe,
        dict(os.environ),
    )
    result = run_strategy(handler, "process_restart", service=service)
    # The command wrote a pid that exited at once: service control reports it never got healthy.
    assert result.failure_type == "restart_timeout"


def test_process_restart_without_a_recorded_identity_refuses(tmp_path: Path) -> None:
    settings = {**RELAXED, "processes": [{"name": "ghost", "pidfile": str(tmp_path / "ghost.pid")}]}
    handler = handler_for(tmp_path, settings)
    result = run_strategy(handler, "process_restart")
    assert result.failure_type == "no_recorded_identity"
    assert not handler.preflight("process_restart")[0].ok


def test_validate_config_reports_keys() -> None:
    errors = validate_system(
        {
            "disk": {"paths": "/", "max_used_percent": -1},
            "processes": [{"name": "a", "reclaim_signal": "SIGNOPE"}],
        },
        {
            "disk_cleanup": {"roots": ["relative"], "quarantine_dir": "q"},
            "memory_gc": {"drop_page_cache": "yes"},
        },
    )
    keys = {e.key for e in errors}
    assert keys == {
        "settings.disk.paths",
        "settings.disk.max_used_percent",
        "settings.processes.0",
        "settings.processes.0.reclaim_signal",
        "strategies.disk_cleanup.params.roots.0",
        "strategies.disk_cleanup.params.quarantine_dir",
        "strategies.memory_gc.params.drop_page_cache",
    }
