"""Service control against real processes, a fake systemctl and a fake Docker Engine."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recovery_cli.config import ServiceConfig
from recovery_cli.handlers.base import Health, ProbeResult
from recovery_cli.service import (
    build_service,
    container_health,
    fold_container_health,
)
from tests.support.fake_docker import FakeContainer, FakeEngine

FAKE_SYSTEMCTL_DIR = Path(__file__).parents[1] / "support" / "fake_systemctl"

# A tiny init script: "restart" kills the recorded daemon and spawns a new one, detached
# (the launcher exits at once, so the daemon is reparented and never left a zombie).
CTL_SCRIPT = textwrap.dedent(
    """
    import os, signal, subprocess, sys
    verb, pidfile = sys.argv[1], sys.argv[2]
    def stop():
        try:
            os.kill(int(open(pidfile).read()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
    if verb in ("stop", "restart"):
        stop()
    if verb in ("start", "restart"):
        child = subprocess.Popen(["sleep", "300"], start_new_session=True,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        open(pidfile + ".tmp", "w").write(str(child.pid))
        os.replace(pidfile + ".tmp", pidfile)
        os._exit(0)
    """
)


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text())
    except (OSError, ValueError):
        return None


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """(pidfile, ctl argv prefix) for a real ``sleep`` daemon; killed at teardown."""
    ctl = tmp_path / "ctl.py"
    ctl.write_text(CTL_SCRIPT)
    pidfile = tmp_path / "daemon.pid"
    yield pidfile, [sys.executable, str(ctl)]
    pid = _read_pid(pidfile)
    if pid is not None and _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def _pidfile_probe(pidfile: Path) -> ProbeResult:
    pid = _read_pid(pidfile)
    if pid is not None and _pid_alive(pid):
        return ProbeResult.ok(f"pid {pid}")
    return ProbeResult.down("process_down", "no live pid in the pidfile")


def test_no_block_or_method_none_gives_no_control() -> None:
    assert build_service(None, lambda: ProbeResult.ok(), {}) is None
    assert build_service(ServiceConfig(method="none"), lambda: ProbeResult.ok(), {}) is None


def test_command_restart_replaces_a_real_process(daemon: tuple[Path, list[str]]) -> None:
    pidfile, ctl = daemon
    spec = ServiceConfig(
        method="command", restart=[*ctl, "restart", str(pidfile)], ready_timeout_seconds=10
    )
    service = build_service(spec, lambda: _pidfile_probe(pidfile), dict(os.environ))
    assert service is not None and service.method == "command"

    first = service.start(10)
    first_pid = _read_pid(pidfile)
    result = service.restart(10)

    assert first.ok and result.ok, result.detail
    second_pid = _read_pid(pidfile)
    assert first_pid is not None and second_pid is not None and second_pid != first_pid
    assert _wait_dead(first_pid)  # the old one was sent SIGTERM; it may take a moment
    assert _pid_alive(second_pid)
    assert result.data["method"] == "command"


def test_command_restart_uses_stop_then_start(daemon: tuple[Path, list[str]]) -> None:
    pidfile, ctl = daemon
    spec = ServiceConfig(
        method="command", stop=[*ctl, "stop", str(pidfile)], start=[*ctl, "start", str(pidfile)]
    )
    service = build_service(spec, lambda: _pidfile_probe(pidfile), dict(os.environ))
    assert service is not None
    assert service.start(10).ok
    old = _read_pid(pidfile)
    assert service.stop(10).ok
    assert old is not None and _wait_dead(old)
    assert service.restart(10).ok
    assert _read_pid(pidfile) != old


def test_command_start_alone_restarts_a_killed_process(daemon: tuple[Path, list[str]]) -> None:
    pidfile, ctl = daemon
    spec = ServiceConfig(method="command", start=[*ctl, "start", str(pidfile)])
    service = build_service(spec, lambda: _pidfile_probe(pidfile), dict(os.environ))
    assert service is not None
    assert service.start(10).ok
    old = _read_pid(pidfile)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    assert _wait_dead(old)
    result = service.restart(10)
    assert result.ok, result.detail
    assert _pid_alive(_read_pid(pidfile) or 0)


def test_a_failing_stop_of_a_dead_process_does_not_stop_the_start(
    daemon: tuple[Path, list[str]],
) -> None:
    pidfile, ctl = daemon
    spec = ServiceConfig(
        method="command",
        stop=["sh", "-c", "echo 'Could not connect: Connection refused' >&2; exit 1"],
        start=[*ctl, "start", str(pidfile)],
    )
    service = build_service(spec, lambda: _pidfile_probe(pidfile), dict(os.environ))
    assert service is not None
    result = service.restart(10)
    assert result.ok, result.detail
    assert _pid_alive(_read_pid(pidfile) or 0)
    assert not service.stop(10).ok, "on its own, a failing stop is still a failure"


def test_the_config_accepts_start_alone_for_method_command() -> None:
    from recovery_cli.config import ServiceConfig as Spec

    assert Spec(method="command", start=["true"]).start == ["true"]
    with pytest.raises(ValueError, match="needs 'restart' or 'start'"):
        Spec(method="command", stop=["true"])


def _wait_dead(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_command_failure_missing_tool_and_hang() -> None:
    def probe() -> ProbeResult:
        return ProbeResult.ok()

    failing = build_service(
        ServiceConfig(method="command", restart=["sh", "-c", "echo boom >&2; exit 3"]),
        probe,
        dict(os.environ),
    )
    missing = build_service(
        ServiceConfig(method="command", restart=["/nonexistent/ctl"]), probe, {}
    )
    hanging = build_service(
        ServiceConfig(method="command", restart=["sleep", "30"], timeout_seconds=1),
        probe,
        dict(os.environ),
    )
    assert failing is not None and missing is not None and hanging is not None

    failed = failing.restart(10)
    assert (failed.ok, failed.failure_type) == (False, "command_failed")
    assert "exited 3" in failed.detail and "boom" in failed.detail
    assert missing.restart(10).failure_type == "command_failed"
    started = time.monotonic()
    hung = hanging.restart(10)
    assert hung.failure_type == "restart_timeout"
    assert time.monotonic() - started < 4


def test_command_restart_times_out_when_never_healthy() -> None:
    spec = ServiceConfig(method="command", restart=["true"], ready_timeout_seconds=0.6)
    service = build_service(
        spec, lambda: ProbeResult.down("refused", "port closed"), dict(os.environ)
    )
    assert service is not None
    started = time.monotonic()
    result = service.restart(30)
    assert result.failure_type == "restart_timeout"
    assert "refused" in result.detail
    assert 0.5 <= time.monotonic() - started < 2.5


def test_ready_wait_respects_the_step_budget() -> None:
    spec = ServiceConfig(method="command", restart=["true"], ready_timeout_seconds=60)
    service = build_service(spec, lambda: ProbeResult.down("refused"), dict(os.environ))
    assert service is not None
    started = time.monotonic()
    assert service.restart(1.0).failure_type == "restart_timeout"
    assert time.monotonic() - started < 2.5


def test_command_preflight_reports_missing_tool() -> None:
    spec = ServiceConfig(
        method="command", restart=["definitely-not-a-tool-xyz"], stop=["true"], start=["true"]
    )
    service = build_service(spec, lambda: ProbeResult.ok(), dict(os.environ))
    assert service is not None
    checks = {c.name: c for c in service.preflight()}
    assert not checks["service.restart"].ok
    assert checks["service.stop"].ok


# --------------------------------------------------------------------------- systemd


@pytest.fixture
def systemctl_env(tmp_path: Path) -> dict[str, str]:
    state = tmp_path / "systemd"
    state.mkdir()
    return {
        **os.environ,
        "PATH": f"{FAKE_SYSTEMCTL_DIR}:{os.environ['PATH']}",
        "FAKE_SYSTEMCTL_LOG": str(tmp_path / "systemctl.log"),
        "FAKE_SYSTEMCTL_UNITS": "redis-server chromadb",
        "FAKE_SYSTEMCTL_STATE": str(state),
    }


def test_systemd_restart_runs_systemctl_and_waits_for_health(
    systemctl_env: dict[str, str], tmp_path: Path
) -> None:
    marker = tmp_path / "systemd" / "redis-server.restart"

    def probe() -> ProbeResult:
        return ProbeResult.ok() if marker.exists() else ProbeResult.down("connection_refused")

    service = build_service(
        ServiceConfig(method="systemd", unit="redis-server"), probe, systemctl_env
    )
    assert service is not None and service.method == "systemd"
    result = service.restart(10)
    assert result.ok, result.detail
    assert (tmp_path / "systemctl.log").read_text().splitlines() == ["restart redis-server"]


def test_systemd_unknown_unit(systemctl_env: dict[str, str], tmp_path: Path) -> None:
    service = build_service(
        ServiceConfig(method="systemd", unit="nosuch"), lambda: ProbeResult.ok(), systemctl_env
    )
    assert service is not None
    result = service.restart(10)
    assert (result.ok, result.failure_type) == (False, "unit_not_found")
    checks = service.preflight()
    assert checks[0].ok and not checks[1].ok and "not-found" in checks[1].detail
    log = (tmp_path / "systemctl.log").read_text().splitlines()
    assert log == ["restart nosuch", "show --property=LoadState --value nosuch"]


def test_systemd_preflight_known_unit_and_missing_systemctl(systemctl_env: dict[str, str]) -> None:
    service = build_service(
        ServiceConfig(method="systemd", unit="chromadb"), lambda: ProbeResult.ok(), systemctl_env
    )
    assert service is not None
    assert all(c.ok for c in service.preflight())
    bare = build_service(
        ServiceConfig(method="systemd", unit="chromadb"),
        lambda: ProbeResult.ok(),
        {"PATH": "/nonexistent"},
    )
    assert bare is not None
    assert [c.ok for c in bare.preflight()] == [False]
    assert bare.stop(5).failure_type == "command_failed"


# --------------------------------------------------------------------------- docker


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[FakeEngine]:
    with FakeEngine(tmp_path / "docker.sock") as fake:
        yield fake


def _docker(engine_url: str, container: str = "redis", **extra: float) -> ServiceConfig:
    return ServiceConfig(method="docker", container=container, base_url=engine_url, **extra)


def test_docker_restart_through_the_sdk(engine: FakeEngine) -> None:
    container = engine.add(FakeContainer("redis", health="unhealthy", health_after_start="healthy"))

    def probe() -> ProbeResult:
        return ProbeResult.ok() if container.health == "healthy" else ProbeResult.down("unhealthy")

    service = build_service(_docker(engine.url), probe, {})
    assert service is not None and service.method == "docker"
    result = service.restart(10)
    assert result.ok, result.detail
    assert container.calls == ["restart"]
    assert container.restart_count == 1
    assert any(
        r.startswith("POST /containers/redis") and r.endswith("/restart") for r in engine.requests
    )


def test_docker_stop_start_and_preflight(engine: FakeEngine) -> None:
    container = engine.add(FakeContainer("chroma"))
    service = build_service(_docker(engine.url, "chroma"), lambda: ProbeResult.ok(), {})
    assert service is not None
    assert service.stop(10).ok and container.status == "exited"
    assert [c.ok for c in service.preflight()] == [True]
    assert service.start(10).ok and container.status == "running"
    assert container.calls == ["stop", "start"]


def test_docker_missing_container_and_refused_restart(engine: FakeEngine) -> None:
    engine.add(FakeContainer("broken", refuse_restart=True))
    missing = build_service(_docker(engine.url, "ghost"), lambda: ProbeResult.ok(), {})
    broken = build_service(_docker(engine.url, "broken"), lambda: ProbeResult.ok(), {})
    assert missing is not None and broken is not None
    assert missing.restart(10).failure_type == "container_not_found"
    refused = broken.restart(10)
    assert refused.failure_type == "command_failed" and "driver failed" in refused.detail
    assert "container_not_found" in missing.preflight()[0].detail


def test_docker_engine_unreachable(tmp_path: Path) -> None:
    spec = _docker(f"unix://{tmp_path}/no-engine.sock")
    service = build_service(spec, lambda: ProbeResult.ok(), {})
    assert service is not None
    result = service.restart(10)
    assert (result.failure_type, result.retryable) == ("engine_unreachable", True)
    assert not service.preflight()[0].ok


def test_docker_url_comes_from_docker_host(engine: FakeEngine) -> None:
    engine.add(FakeContainer("redis"))
    spec = ServiceConfig(method="docker", container="redis")
    service = build_service(spec, lambda: ProbeResult.ok(), {"DOCKER_HOST": engine.url})
    assert service is not None
    assert service.restart(10).ok


def test_docker_hung_engine_fails_within_the_step_budget(tmp_path: Path) -> None:
    """An engine that accepts and never answers: the SDK's 60 s default must not apply."""
    path = tmp_path / "hung.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(8)
        service = build_service(_docker(f"unix://{path}"), lambda: ProbeResult.ok(), {})
        assert service is not None
        started = time.monotonic()
        result = service.restart(3)
        elapsed = time.monotonic() - started
    assert (result.failure_type, result.retryable) == ("engine_unreachable", True)
    assert elapsed < 5


@pytest.mark.parametrize(
    ("container", "health", "failure_type"),
    [
        (FakeContainer("c", health="unhealthy"), Health.DOWN, "container_unhealthy"),
        (FakeContainer("c", health="starting"), Health.DEGRADED, "container_starting"),
        (
            FakeContainer("c", status="exited", oom_killed=True),
            Health.DOWN,
            "container_not_running",
        ),
        (FakeContainer("c", status="restarting"), Health.DOWN, "restart_loop"),
        (FakeContainer("c", health="healthy"), Health.HEALTHY, None),
        (FakeContainer("c"), Health.HEALTHY, None),
    ],
)
def test_container_health(
    engine: FakeEngine, container: FakeContainer, health: Health, failure_type: str | None
) -> None:
    engine.add(container)
    result = container_health(_docker(engine.url, "c"), {})
    assert result is not None
    assert (result.health, result.failure_type) == (health, failure_type)
    if container.oom_killed:
        assert "OOM" in result.detail


def test_container_health_folds_into_the_probe(engine: FakeEngine, tmp_path: Path) -> None:
    engine.add(FakeContainer("c", health="unhealthy"))
    spec = _docker(engine.url, "c")
    assert container_health(ServiceConfig(method="systemd", unit="x"), {}) is None
    folded = fold_container_health(ProbeResult.ok("pong"), spec, {})
    assert folded.failure_type == "container_unhealthy"
    already_down = ProbeResult.down("connection_refused")
    assert fold_container_health(already_down, spec, {}) is already_down
    gone = container_health(_docker(engine.url, "ghost"), {})
    assert gone is not None and gone.failure_type == "container_not_found"
    no_engine = container_health(_docker(f"unix://{tmp_path}/none.sock"), {})
    assert no_engine is not None and no_engine.health is Health.DEGRADED
    assert no_engine.failure_type == "engine_unreachable"


def test_core_probe_includes_the_container_health(engine: FakeEngine, tmp_path: Path) -> None:
    """A component run in Docker: its status reflects the container's health check."""
    from tests.support.cli import Workspace, base_config, command_component

    engine.add(FakeContainer("web", health="unhealthy"))
    ws = Workspace(tmp_path)
    component = command_component(["true"], {"fix": ["true"]})
    component["service"] = {"method": "docker", "container": "web", "base_url": engine.url}
    ws.write_config(base_config({"web": component}))
    [row] = json.loads(ws.run("status", "--json").stdout)
    assert (row["health"], row["failure_type"]) == ("down", "container_unhealthy")
