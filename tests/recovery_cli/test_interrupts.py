"""Ctrl-C, SIGTERM and timeouts end the commands the run started: nothing outlives the CLI,
the interruption is audited, and the next run is not blocked."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from recovery_cli.errors import ExitCode
from tests.support.cli import Workspace, base_config, command_component


def pid_from(path: Path, seconds: float = 20) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if text.endswith("\n"):
            return int(text)
        time.sleep(0.05)
    raise AssertionError(f"no pid written to {path}")


def gone(pid: int, seconds: float = 3) -> bool:
    """The process is not ours to reap: gone means no /proc entry, or a zombie."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return True
        state = next(line for line in status.splitlines() if line.startswith("State:"))
        if state.split()[1] == "Z":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGINT, ExitCode.INTERRUPTED), (signal.SIGTERM, ExitCode.TERMINATED)],
)
def test_signal_ends_the_step_and_is_recorded(
    ws: Workspace, tmp_path: Path, signum: int, code: ExitCode
) -> None:
    pidfile, healed = tmp_path / "pid", tmp_path / "healed"
    # first run: hangs in the step; second run: heals at once
    script = f"if [ -f {pidfile} ]; then touch {healed}; exit 0; fi; echo $$ > {pidfile}; "
    component = command_component(
        ["test", "-f", str(healed)], {"hang": ["sh", "-c", script + "exec sleep 60"]}
    )
    ws.write_config(base_config({"app": component}))
    proc = ws.popen("recover")
    pid = pid_from(pidfile)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert gone(pid), f"strategy process {pid} outlived the run"
    trail = [
        (r["event"], r.get("outcome"), r.get("strategy"))
        for r in ws.records()
        if r["event"] != "state_changed"
    ]
    assert trail == [
        ("attempt", "started", "hang"),
        ("step", "interrupted", "hang"),
        ("attempt", "interrupted", "hang"),
    ]
    again = ws.run("recover")
    assert again.returncode == ExitCode.OK, again.stderr
    assert not ws.events("blocked")


def test_timed_out_probe_leaves_no_process(ws: Workspace, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    probe = ["sh", "-c", f"echo $$ > {pidfile}; exec sleep 30"]
    component = command_component(probe, {"fix": ["true"]}, probe_timeout_seconds=1)
    component["settings"]["probe_timeout_seconds"] = 30  # the handler would wait longer
    ws.write_config(base_config({"app": component}))
    result = ws.run("status")
    assert "probe_timeout" in result.stdout, result.stderr
    assert gone(pid_from(pidfile, seconds=1)), "timed-out probe outlived the run"
