"""``recovery recover``: what --verbose shows, and a person's confirmation at a terminal."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support.cli import Workspace, base_config, child_env, command_component
from tests.support.step_trail import flag_component, seed_state_dir
from tests.support.terminal import run_on_terminal


def test_verbose_names_config_state_and_every_record_written(ws: Workspace, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    ws.write_config(
        base_config(
            {"app": command_component(["test", "-f", str(flag)], {"fix": ["touch", str(flag)]})}
        )
    )
    result = ws.run("--verbose", "recover")
    assert result.returncode == 0
    lines = result.stderr.splitlines()
    assert lines[:2] == [f"config: {ws.config}", f"state dir: {ws.state}"]
    traced = [ln for ln in lines if ln.startswith("audit ")]
    assert len(traced) == len(ws.records())
    kinds = [ln for ln in traced if "event=state_changed" not in ln]
    assert len(kinds) == 3
    assert "event=step" in kinds[1] and "strategy=fix" in kinds[1]
    assert ws.run("recover").stderr == ""  # quiet without --verbose


def test_terminal_confirmation_is_recorded_as_an_approval(ws: Workspace, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    component = command_component(["test", "-f", str(flag)], {"fix": ["touch", str(flag)]})
    component["strategies"]["fix"]["approval"] = "required"
    ws.write_config(base_config({"app": component}))
    answered = []

    def answer(output: bytes) -> bytes | None:
        if answered or b"Approve" not in output:
            return None
        answered.append(True)
        return b"y\n"

    code, output = run_on_terminal(ws.argv("recover", "app"), child_env({"USER": "erin"}), answer)
    assert answered, output.decode(errors="replace")
    assert code == 0, output.decode(errors="replace")
    assert flag.exists()
    approved = ws.events("approved", "app")
    assert approved[0]["operator"] == "erin" and "interactive" in approved[0]["detail"]
    assert approved[0]["trigger"] == "manual"


@pytest.mark.parametrize("second_step", ["failing", "needing approval"])
def test_the_health_a_run_reports_is_the_health_status_shows(
    ws: Workspace, second_step: str
) -> None:
    """A degraded component (a probe that warns) stays degraded in the run's own report,
    whether its chain failed or stopped at a step that waits for a person."""
    risky: dict[str, object] = {"params": {"command": ["false"]}}
    if second_step == "needing approval":
        risky = {"params": {"command": ["true"]}, "approval": "required"}
    component = command_component(["sh", "-c", "exit 1"], {"fix": ["false"]})
    component["chain"] = ["fix", "risky"]
    component["strategies"]["risky"] = risky
    ws.write_config(base_config({"app": component}, cooldown_seconds=0))
    [report] = json.loads(ws.run("recover", "--json").stdout)
    [row] = json.loads(ws.run("status", "--json").stdout)
    expected = "failed" if second_step == "failing" else "awaiting_approval"
    assert report["outcome"] == expected
    assert report["health"] == row["health"] == "degraded"


def test_a_dry_run_tells_the_truth_in_its_exit_code(ws: Workspace) -> None:
    ws.write_config(
        base_config(
            {
                "down": command_component(["false"], {"fix": ["true"]}),
                "up": command_component(["true"], {"fix": ["true"]}),
            }
        )
    )
    assert ws.run("recover", "down", "--dry-run").returncode == 1  # nothing was changed
    assert ws.run("recover", "up", "--dry-run").returncode == 0
    assert ws.run("recover", "up", "--dry-run", "--force").returncode == 0
    assert not ws.state.exists()


def test_a_dry_run_shows_the_adaptive_order_and_changes_nothing(
    ws: Workspace, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    component = flag_component(flag, chain_order="adaptive")
    component["strategies"]["gc"] = {"params": {"command": ["true"]}}
    component["chain"] = ["reconnect", "gc", "restart_container"]
    ws.write_config(base_config({"app": component}))
    results = {"reconnect": (10, 1), "restart_container": (10, 9), "gc": (2, 2)}
    seed_state_dir(ws.state, "app", "probe_warning", results, time.time() - 600)
    before = ws.records()

    [report] = json.loads(ws.run("recover", "--dry-run", "--json").stdout)
    text = ws.run("recover", "--dry-run").stdout

    assert report["plan"] == ["restart_container", "gc", "reconnect"]  # gc: too few runs
    assert [s["strategy"] for s in report["steps"]] == report["plan"]
    basis = report["chain_order"]["basis"]
    assert basis["gc"] == {
        "runs": 2,
        "successes": 2,
        "wilson_low": 0.3424,
        "approval": "auto",
        "ranked": False,
    }
    assert (
        "gc: 2 of 2 runs succeeded, Wilson low 0.342 (fewer than 5 runs: keeps its place)" in text
    )
    assert ws.records() == before and not flag.exists()


def test_a_configured_chain_dry_run_prints_no_ranking(ws: Workspace, tmp_path: Path) -> None:
    ws.write_config(base_config({"app": flag_component(tmp_path / "flag")}))
    seed_state_dir(ws.state, "app", "probe_warning", {"restart_container": (10, 10)}, time.time())
    [report] = json.loads(ws.run("recover", "--dry-run", "--json").stdout)
    assert report["plan"] == ["reconnect", "restart_container"]
    assert report["chain_order"] == {
        "mode": "configured",
        "order": ["reconnect", "restart_container"],
        "why": "configured order",
    }
    assert "chain (" not in ws.run("recover", "--dry-run").stdout
