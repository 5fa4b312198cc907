"""The approval workflow: request, reuse, approve once, expiry, rejection, changed plans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recovery_cli.approvals import ApprovalRefused
from recovery_cli.errors import ExitCode
from tests.support.cli import Workspace, base_config, command_component
from tests.support.core import Core, make_core


def approval_config(tmp: Path, ttl: int = 3600) -> dict[str, object]:
    flag, level = tmp / "flag", tmp / "level"
    level.write_text("2")
    # exit 0 when the flag exists, else the exit code written in `level` (2 down, 1 degraded)
    probe = ["sh", "-c", f'test -f {flag} && exit 0; exit "$(cat {level})"']
    component = command_component(probe, {"gentle": ["false"], "fix": ["touch", str(flag)]})
    component["strategies"]["fix"]["approval"] = "required"
    return base_config({"app": component}, approval_ttl_seconds=ttl)


@pytest.fixture
def core(tmp_path: Path) -> Core:
    return make_core(tmp_path, approval_config(tmp_path))


def test_step_needing_approval_stops_with_a_pending_request(core: Core, tmp_path: Path) -> None:
    [report] = core.recover("app")
    assert report.code == ExitCode.BLOCKED and report.outcome == "awaiting_approval"
    assert [s.strategy for s in report.steps] == ["gentle"]
    assert not (tmp_path / "flag").exists()
    [requested] = core.records("approval_requested")
    assert requested["approval_id"] == report.approval_id and requested["strategy"] == "fix"


def test_pending_request_is_reused_not_multiplied(core: Core) -> None:
    first = core.recover("app")[0].approval_id
    second = core.recover("app")[0].approval_id
    assert first == second
    assert len(core.records("approval_requested")) == 1
    pending = [a for a in core.store.load_state().approvals.values() if a.status == "pending"]
    assert len(pending) == 1


def test_approve_runs_the_step_records_who_and_is_single_use(core: Core, tmp_path: Path) -> None:
    approval_id = core.recover("app")[0].approval_id
    assert approval_id is not None
    report = core.approve(approval_id[:4], operator="alice")
    assert report.code == ExitCode.OK and report.outcome == "recovered"
    assert (tmp_path / "flag").exists()
    [approved] = [r for r in core.records("approved") if r.get("approval_id") == approval_id]
    assert approved["operator"] == "alice"
    (tmp_path / "flag").unlink()
    with pytest.raises(ApprovalRefused, match="single-use"):
        core.approve(approval_id)


def test_expired_approval_is_refused(core: Core) -> None:
    approval_id = core.recover("app")[0].approval_id
    assert approval_id is not None
    core.clock.advance(3601)
    with pytest.raises(ApprovalRefused, match="expired"):
        core.approve(approval_id)


def test_an_approval_expired_by_another_run_says_expired_not_single_use(core: Core) -> None:
    approval_id = core.recover("app")[0].approval_id
    assert approval_id is not None
    core.clock.advance(3601)
    core.recover("app")  # this run marks the old approval expired and asks afresh
    with pytest.raises(ApprovalRefused) as refused:
        core.approve(approval_id)
    assert "expired at" in str(refused.value) and "single-use" not in str(refused.value)


def test_rejected_approval_cannot_be_approved(core: Core, tmp_path: Path) -> None:
    approval_id = core.recover("app")[0].approval_id
    assert approval_id is not None
    core.orchestrator().reject(approval_id, "bob", "not during business hours")
    [rejected] = core.records("rejected")
    assert rejected["operator"] == "bob" and rejected["detail"] == "not during business hours"
    with pytest.raises(ApprovalRefused, match="rejected"):
        core.approve(approval_id)
    assert not (tmp_path / "flag").exists()


def test_changed_plan_is_refused(core: Core, tmp_path: Path) -> None:
    approval_id = core.recover("app")[0].approval_id
    assert approval_id is not None
    (tmp_path / "level").write_text("1")  # the failure is now a different one
    report = core.approve(approval_id)
    assert report.code == ExitCode.BLOCKED and report.reason == "plan_changed"
    assert not (tmp_path / "flag").exists()
    assert core.store.load_state().approvals[approval_id].status == "superseded"


def test_approval_of_an_already_healthy_component_closes_it(core: Core, tmp_path: Path) -> None:
    approval_id = core.recover("app")[0].approval_id
    assert approval_id is not None
    (tmp_path / "flag").touch()
    report = core.approve(approval_id)
    assert report.code == ExitCode.OK and report.outcome == "healthy"
    assert core.store.load_state().approvals[approval_id].status == "not_needed"


def test_cli_lists_approves_and_yes_records_the_operator(ws: Workspace, tmp_path: Path) -> None:
    ws.write_config(approval_config(tmp_path))
    assert ws.run("recover", "app").returncode == 3
    listing = json.loads(ws.run("approve", "--json").stdout)
    assert [(a["component"], a["strategy"]) for a in listing] == [("app", "fix")]
    approved = ws.run("approve", listing[0]["id"], "--as", "carol")
    assert approved.returncode == 0, approved.stderr
    assert ws.run("approve", listing[0]["id"]).returncode == 3
    (tmp_path / "flag").unlink()
    with_yes = ws.run("recover", "app", "--yes", env={"USER": "dave"})
    assert with_yes.returncode == 0
    assert ws.events("approved", "app")[-1]["operator"] == "dave"
    assert "--yes" in ws.events("approved", "app")[-1]["detail"]


def test_unknown_approval_id_is_a_usage_error(ws: Workspace, tmp_path: Path) -> None:
    ws.write_config(approval_config(tmp_path))
    result = ws.run("approve", "ffffffff")
    assert result.returncode == 2 and "no approval" in result.stderr
