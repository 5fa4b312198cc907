"""A command's output is bounded: a probe that floods its pipe costs neither memory nor a
huge audit record."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from recovery_cli.handlers.base import Health, ProbeResult, StrategyResult
from recovery_cli.handlers.util import DETAIL_LIMIT, OUTPUT_LIMIT, run_command
from tests.support.cli import Workspace, base_config, child_env, command_component

MAX_RSS_KIB = 200 * 1024
AUDIT_LINE_LIMIT = 16 * 1024


def flood(size: int, then: str = "exit 0") -> list[str]:
    """A command printing ``size`` bytes of one line; ``head | tr`` keeps its own RSS small
    (a child's peak counts in the CLI's ``wait4`` rusage once the CLI reaps it)."""
    return ["sh", "-c", f"head -c {size} /dev/zero | tr '\\0' x; {then}"]


def test_run_command_keeps_at_most_the_cap() -> None:
    outcome = run_command(flood(10_000_000), timeout=60)
    assert outcome.returncode == 0 and not outcome.timed_out
    assert len(outcome.output) == OUTPUT_LIMIT


def test_every_result_constructor_trims_its_detail() -> None:
    long = "y" * 100_000
    results: list[ProbeResult | StrategyResult] = [
        ProbeResult(Health.DOWN, "x", long),
        ProbeResult.ok(long),
        ProbeResult.down("x", long),
        StrategyResult(False, long),
        StrategyResult.success(long),
    ]
    assert all(len(r.detail) <= DETAIL_LIMIT for r in results)


def test_flooding_probe_keeps_status_small(ws: Workspace, tmp_path: Path) -> None:
    component = command_component(flood(400_000_000), {"fix": ["true"]}, probe_timeout_seconds=60)
    ws.write_config(base_config({"app": component}))
    out = tmp_path / "status.json"
    with out.open("w") as stdout:
        proc = subprocess.Popen(
            ws.argv("status", "--json"),
            stdout=stdout,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=child_env(),
        )
        _, status, rusage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4, not by Popen
    assert proc.returncode == 0
    assert rusage.ru_maxrss < MAX_RSS_KIB  # KiB on Linux
    [row] = json.loads(out.read_text())
    assert row["health"] == "healthy" and 0 < len(row["detail"]) <= DETAIL_LIMIT


def test_long_output_line_keeps_audit_records_small(ws: Workspace) -> None:
    component = command_component(
        flood(40_000_000, then="exit 2"),
        {"fix": flood(40_000_000)},
        probe_timeout_seconds=60,
        step_timeout_seconds=60,
    )
    ws.write_config(base_config({"app": component}))
    result = ws.run("recover")
    assert result.returncode == 1, result.stderr
    lines = [
        line
        for path in (ws.state / "audit").glob("*.jsonl")
        for line in path.read_bytes().splitlines()
    ]
    actions = [line for line in lines if b'"event":"state_changed"' not in line]
    assert len(actions) == 3  # attempt started, step, attempt failed
    assert all(len(line) < AUDIT_LINE_LIMIT for line in lines)
    assert all(len(r.get("detail", "")) <= DETAIL_LIMIT for r in ws.records())
