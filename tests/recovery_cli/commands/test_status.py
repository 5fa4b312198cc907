"""``recovery status``: the gates, as JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.support.cli import Workspace, base_config, command_component
from tests.support.step_trail import flag_component, seed_state_dir


def test_status_json_reports_the_gates(ws: Workspace) -> None:
    ws.write_config(base_config({"app": command_component(["false"], {"fix": ["false"]})}))
    ws.run("recover")
    ws.run("disable", "app", "--for", "30m", "--reason", "x")
    [row] = json.loads(ws.run("status", "--json").stdout)
    assert row["health"] == "degraded" and row["failure_type"] == "probe_warning"  # `false` exits 1
    assert row["attempts_last_hour"] == 1 and row["hourly_cap"] == 3
    assert 290 <= row["cooldown_left_s"] <= 300
    assert row["disabled_until"] is not None and row["next_allowed"] != "now"
    explained = ws.run("status", "--explain", "--no-probe")
    assert "cooldown: last failure" in explained.stdout


def test_explain_shows_an_adaptive_chain_and_the_numbers_behind_it(
    ws: Workspace, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    ws.write_config(base_config({"app": flag_component(flag, chain_order="adaptive")}))
    results = {"reconnect": (10, 1), "restart_container": (10, 9)}
    seed_state_dir(ws.state, "app", "probe_warning", results, time.time() - 600)

    explained = ws.run("status", "--explain").stdout

    assert "chain (adaptive): restart_container, reconnect (failure probe_warning)" in explained
    assert "reconnect: 1 of 10 runs succeeded, Wilson low 0.018 (ranked)" in explained
    [row] = json.loads(ws.run("status", "--json").stdout)
    assert row["chain_order"]["order"] == ["restart_container", "reconnect"]
    assert row["chain_order"]["basis"]["restart_container"]["runs"] == 10
    assert not flag.exists()  # status changes nothing


def test_explain_shows_a_configured_chain_in_its_order(ws: Workspace) -> None:
    component = command_component(["false"], {"b": ["true"], "a": ["true"]})
    ws.write_config(base_config({"app": component}))
    explained = ws.run("status", "--explain", "--no-probe").stdout
    assert "chain (configured): b, a" in explained
