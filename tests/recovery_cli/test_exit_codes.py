"""One test per exit code, through the real CLI."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from recovery_cli.errors import ExitCode, worst
from tests.support.cli import Workspace, base_config, command_component


def one(ws: Workspace, probe: list[str], fix: list[str]) -> None:
    ws.write_config(base_config({"app": command_component(probe, {"fix": fix})}))


def test_exit_0_healthy_or_recovered(ws: Workspace, tmp_path: Path) -> None:
    one(ws, ["test", "-f", str(tmp_path / "f")], ["touch", str(tmp_path / "f")])
    assert ws.run("recover").returncode == ExitCode.OK  # recovered
    assert ws.run("recover").returncode == ExitCode.OK  # healthy


def test_exit_1_still_unhealthy(ws: Workspace) -> None:
    one(ws, ["false"], ["true"])
    assert ws.run("recover").returncode == ExitCode.UNHEALTHY


def test_exit_2_usage_error(ws: Workspace) -> None:
    one(ws, ["true"], ["true"])
    result = ws.run("recover", "--no-such-flag")
    assert result.returncode == ExitCode.USAGE
    unknown = ws.run("recover", "nosuch")
    assert unknown.returncode == ExitCode.USAGE and "unknown component 'nosuch'" in unknown.stderr
    bad_duration = ws.run("history", "--last", "yesterday")
    assert bad_duration.returncode == ExitCode.USAGE and "invalid time" in bad_duration.stderr


def test_exit_3_blocked_by_policy(ws: Workspace) -> None:
    one(ws, ["false"], ["true"])
    ws.run("disable", "app", "--for", "1h", "--reason", "db migration")
    assert ws.run("recover").returncode == ExitCode.BLOCKED


def test_exit_4_internal_error_logs_traceback(ws: Workspace) -> None:
    from tests.support.cli import with_injected_fault

    one(ws, ["false"], ["true"])
    ws.state.mkdir(mode=0o700)
    result = ws.run("status", "--no-probe", env=with_injected_fault(ws.root))
    assert result.returncode == ExitCode.INTERNAL
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("unexpected error:")
    assert "Traceback" in (ws.state / "errors.log").read_text()


def test_exit_2_state_dir_not_a_directory(ws: Workspace) -> None:
    one(ws, ["false"], ["true"])
    ws.state.write_text("a file, not a directory")
    result = ws.run("recover")
    assert result.returncode == ExitCode.USAGE
    assert "is not a directory" in result.stderr and len(result.stderr.splitlines()) == 1


def signalled_mid_step(ws: Workspace, signum: int) -> tuple[int, str]:
    one(ws, ["false"], ["sleep", "5"])
    proc = ws.popen("recover")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not ws.state.joinpath("audit").exists():
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=20)
    return proc.returncode, stderr


def test_exit_130_interrupted(ws: Workspace) -> None:
    code, stderr = signalled_mid_step(ws, signal.SIGINT)
    assert code == ExitCode.INTERRUPTED, stderr
    assert "Traceback" not in stderr


def test_exit_143_terminated(ws: Workspace) -> None:
    code, stderr = signalled_mid_step(ws, signal.SIGTERM)
    assert code == ExitCode.TERMINATED, stderr
    assert "Traceback" not in stderr


def test_worst_code_wins_across_components() -> None:
    assert worst([ExitCode.OK, ExitCode.BLOCKED]) == ExitCode.BLOCKED
    assert worst([ExitCode.BLOCKED, ExitCode.UNHEALTHY]) == ExitCode.UNHEALTHY
    assert worst([ExitCode.UNHEALTHY, ExitCode.INTERNAL]) == ExitCode.INTERNAL
    assert worst([]) == ExitCode.OK
