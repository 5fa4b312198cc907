"""``recovery history``: filters, JSON and statistics."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import Workspace, base_config, command_component


def test_history_filters_json_and_stats(ws: Workspace, tmp_path: Path) -> None:
    good = command_component(
        ["test", "-f", str(tmp_path / "g")], {"fix": ["touch", str(tmp_path / "g")]}
    )
    bad = command_component(["false"], {"nudge": ["false"]})
    ws.write_config(base_config({"good": good, "bad": bad}))
    ws.run("recover")
    records = json.loads(ws.run("history", "--json", "--component", "bad").stdout)
    assert records and {r["component"] for r in records} == {"bad"}
    assert records[0]["ts"] >= records[-1]["ts"]
    failed = json.loads(
        ws.run("history", "--json", "--outcome", "failed", "--event", "attempt").stdout
    )
    assert [r["component"] for r in failed] == ["bad"]
    limited = json.loads(ws.run("history", "--json", "--limit", "1").stdout)
    assert len(limited) == 1
    future = json.loads(ws.run("history", "--json", "--since", "2099-01-01").stdout)
    assert future == []
    stats = json.loads(ws.run("history", "--stats", "--json").stdout)
    rates = {(s["component"], s["strategy"]): s["success_rate"] for s in stats}
    assert rates == {("good", "fix"): 1.0, ("bad", "nudge"): 0.0}
    assert ws.run("history", "--verify").returncode == 0


def test_verify_with_json_prints_json(ws: Workspace) -> None:
    ws.write_config(base_config({"app": command_component(["false"], {"fix": ["true"]})}))
    ws.run("recover")
    intact = ws.run("history", "--verify", "--json")
    day = sorted((ws.state / "audit").glob("*.jsonl"))[0]
    day.write_text(day.read_text().replace('"event":"attempt"', '"event":"attempX"', 1))
    broken = ws.run("history", "--verify", "--json")

    assert intact.returncode == 0 and json.loads(intact.stdout) == {"intact": True, "problems": []}
    assert broken.returncode == 1
    report = json.loads(broken.stdout)
    assert report["intact"] is False and report["problems"]


def test_filters_repeat(ws: Workspace) -> None:
    ws.write_config(
        base_config(
            {
                "a": command_component(["false"], {"fix": ["true"]}),
                "b": command_component(["false"], {"fix": ["true"]}),
                "c": command_component(["false"], {"fix": ["true"]}),
            }
        )
    )
    ws.run("recover")
    ws.run("recover")  # now refused by the cooldown: blocked records
    both = json.loads(
        ws.run("history", "--event", "attempt", "--event", "blocked", "--json").stdout
    )
    two = json.loads(ws.run("history", "-c", "a", "-c", "b", "--json").stdout)
    stats = json.loads(ws.run("history", "--stats", "-c", "a", "-c", "c", "--json").stdout)

    assert {r["event"] for r in both} == {"attempt", "blocked"}
    assert {r["component"] for r in two} == {"a", "b"}
    assert {r["component"] for r in stats} == {"a", "c"}


def test_an_until_before_the_window_start_is_exit_2_in_one_line(ws: Workspace) -> None:
    ws.write_config(base_config({"app": command_component(["true"], {"fix": ["true"]})}))
    assert ws.run("recover").returncode == 0

    for extra in ([], ["--stats"]):
        result = ws.run("history", "--since", "2026-11-02", "--until", "2026-11-01", *extra)

        assert result.returncode == 2, result.stdout
        assert result.stdout == ""
        [line] = result.stderr.splitlines()
        assert "--until 2026-11-01T00:00:00" in line and "before the window's start" in line
