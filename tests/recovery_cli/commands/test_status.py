"""``recovery status``: the gates, as JSON."""

from __future__ import annotations

import json

from tests.support.cli import Workspace, base_config, command_component


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
