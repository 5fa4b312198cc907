"""A reader that goes away (`| head -1`) never turns a command's exit code into 4."""

from __future__ import annotations

import subprocess

from tests.support.cli import Workspace, base_config, child_env, command_component


def run_and_close_after_one_line(ws: Workspace, *args: str) -> tuple[int, str]:
    proc = subprocess.Popen(
        ws.argv(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    return proc.wait(timeout=60), stderr


def test_history_verify_into_head_keeps_its_exit_code(ws: Workspace) -> None:
    ws.write_config(
        base_config(
            {"app": command_component(["false"], {"fix": ["false"]})},
            cooldown_seconds=0,
            max_attempts_per_hour=1000,
        )
    )
    for _ in range(3):
        ws.run("recover")
    audit = next((ws.state / "audit").glob("*.jsonl"))
    lines = audit.read_text().splitlines(keepends=True)
    # every second line edited: thousands of problem lines, far more than a pipe buffer
    audit.write_text("".join(lines * 400))
    code, stderr = run_and_close_after_one_line(ws, "history", "--verify")
    assert code == 1, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_history_json_into_head_exits_0(ws: Workspace) -> None:
    ws.write_config(
        base_config(
            {"app": command_component(["false"], {"fix": ["false"]})},
            cooldown_seconds=0,
            max_attempts_per_hour=1000,
        )
    )
    for _ in range(20):
        ws.run("recover")
    code, stderr = run_and_close_after_one_line(ws, "history", "--json", "--limit", "1000")
    assert code == 0, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
