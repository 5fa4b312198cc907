"""A reader that goes away (`| head -1`) never turns a command's exit code into 4."""

from __future__ import annotations

from tests.support.cli import Workspace, base_config, command_component, run_into_head


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
    code, stderr = run_into_head(ws, "history", "--verify")
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
    code, stderr = run_into_head(ws, "history", "--json", "--limit", "1000")
    assert code == 0, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
