"""The on-disk guarantees: the cap holds under 20 concurrent runs, and SIGKILL at any moment
leaves every file parseable."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest

from recovery_cli.audit import AuditLog
from recovery_cli.state_file import StateFile
from tests.support.cli import Workspace, base_config, command_component


@pytest.mark.slow
def test_twenty_concurrent_runs_never_exceed_the_cap(ws: Workspace) -> None:
    component = command_component(["false"], {"fix": ["false"]})
    ws.write_config(base_config({"app": component}, cooldown_seconds=0, max_attempts_per_hour=3))
    procs = [ws.popen("recover", "app") for _ in range(20)]
    codes = [p.wait(timeout=120) for p in procs]
    for p in procs:
        p.communicate()
    started = [r for r in ws.events("attempt", "app") if r["outcome"] == "started"]
    blocked = ws.events("blocked", "app")
    assert len(started) == 3
    assert len(blocked) == 17
    assert {r["reason"] for r in blocked} == {"hourly_cap"}
    assert sorted(codes) == [1] * 3 + [3] * 17
    assert AuditLog(ws.state / "audit").verify() == []


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_files_parseable(ws: Workspace, tmp_path: Path) -> None:
    component = command_component(["false"], {"fix": ["sh", "-c", "sleep 0.05; exit 1"]})
    ws.write_config(base_config({"app": component}, cooldown_seconds=0, max_attempts_per_hour=1000))
    # the kills are spread over one whole run as long as it takes on this machine now, so a
    # busy machine (a slow start-up) does not turn every kill into one before the first write
    started = time.monotonic()
    ws.run("recover", "app", "--yes")
    whole_run = time.monotonic() - started
    before = len(list(AuditLog(ws.state / "audit").read_forward()))
    rng = random.Random(7)
    for _ in range(50):
        proc = ws.popen("recover", "app", "--yes")
        time.sleep(rng.uniform(0.0, whole_run * 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    audit = AuditLog(ws.state / "audit")
    records = list(audit.read_forward())
    assert len(records) > before, "some killed runs should have reached the audit trail"
    torn = audit.stats.corrupt_lines
    assert torn <= 1, f"{torn} corrupt lines: only a torn tail is allowed"
    for path in (ws.state / "audit").glob("*.jsonl"):
        lines = path.read_bytes().split(b"\n")
        for line in lines[:-1]:
            json.loads(line)  # every complete line is a JSON record
    StateFile(ws.state / "state.json").load()  # raises if the state file is invalid
    # a later run repairs any torn tail and the whole trail parses again
    final = ws.run("recover", "app")
    assert final.returncode in (1, 3)
    after = AuditLog(ws.state / "audit")
    list(after.read_forward())
    assert after.stats.corrupt_lines == 0
