"""``recovery test``: the drill, its JUnit report, and --live."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

from tests.support.cli import Workspace, base_config, command_component


def test_drill_writes_junit_and_fails_on_missing_tools(ws: Workspace, tmp_path: Path) -> None:
    ok = command_component(["true"], {"fix": ["true"]})
    broken = command_component(
        ["/nonexistent/probe"],
        {"fix": ["no-such-tool-xyz"]},
        settings={"probe": ["/nonexistent/probe"], "token_env": "APP_TOKEN"},
    )
    ws.write_config(base_config({"ok": ok, "broken": broken}))
    report = tmp_path / "report.xml"
    result = ws.run("test", "--junit", str(report))
    assert result.returncode == 1
    suites = {s.get("name"): s for s in ElementTree.parse(report).getroot()}
    assert suites["ok"].get("failures") == "0"
    failing = [c.get("name") for c in suites["broken"] if c.find("failure") is not None]
    assert "fix: fix command: executable" in failing and "credentials: token_env" in failing
    ws.write_config(base_config({"ok": ok}))
    assert ws.run("test").returncode == 0
    assert ws.events("drill")[-1]["outcome"] == "success"


def test_live_drill_runs_each_chain_for_real(ws: Workspace, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    component = command_component(["true"], {"fix": ["touch", str(ran)]})
    ws.write_config(base_config({"staging": component}))
    result = ws.run("test", "--live")
    assert result.returncode == 0, result.stdout + result.stderr
    assert ran.exists(), "a live drill runs the chain even though the component is healthy"
    assert [r["trigger"] for r in ws.events("step", "staging")] == ["test"]
