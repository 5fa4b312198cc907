"""The state file's typed entries: written in the shape the previous version reads, read back
unchanged, and refused with the one-line state error when a field is garbled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recovery_cli.approvals import Approval, ApprovalStatus
from recovery_cli.audit import ChainHead
from recovery_cli.errors import StateError
from recovery_cli.state_file import DegradedEntry, DisabledEntry, State, StateFile
from tests.support.cli import Workspace, base_config, command_component

T0 = 1_795_000_000.0

PENDING = Approval(
    id="ab12cd34",
    component="app",
    strategy="fix",
    plan_hash="a5053e7d0ce78991",
    status=ApprovalStatus.PENDING,
    created=T0,
    expires=T0 + 3600,
    params={"command": ["true"], "alpha": [2]},
    failure_type="probe_warning",
    requested_by="tester",
    attempt_id="0000f4365f74",
    notified=T0 + 300,
)
CLOSED = Approval(
    id="ef56ab78",
    component="app",
    strategy="fix",
    plan_hash="deab810869146cb1",
    status=ApprovalStatus.REJECTED,
    created=T0,
    expires=T0 + 3600,
    requested_by="tester",
    closed_by="bob",
    closed_at=T0 + 30,
)


def test_entries_round_trip_in_the_previous_versions_shape(tmp_path: Path) -> None:
    state = State(
        approvals={PENDING.id: PENDING, CLOSED.id: CLOSED},
        disabled={"app": DisabledEntry(until=T0 + 7200, since=T0, reason="maint", by="ops")},
        degraded={"app_down": DegradedEntry(component="app", since=T0, why="chain exhausted")},
        chain_head=ChainHead("2026-11-18.jsonl", 9486, "ab" * 32),
    )
    state_file = StateFile(tmp_path / "state.json")
    state_file.save(state)
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["approvals"][CLOSED.id] == {
        "attempt_id": None,
        "closed_at": T0 + 30,
        "closed_by": "bob",
        "component": "app",
        "created": T0,
        "created_ts": "2026-11-18T11:06:40.000000Z",
        "expires": T0 + 3600,
        "failure_type": None,
        "id": CLOSED.id,
        "params": {},
        "plan_hash": "deab810869146cb1",
        "requested_by": "tester",
        "status": "rejected",
        "strategy": "fix",
    }
    assert saved["approvals"][PENDING.id]["notified"] == T0 + 300
    assert saved["disabled"] == {
        "app": {"until": T0 + 7200, "reason": "maint", "by": "ops", "since": T0}
    }
    assert saved["degraded"] == {
        "app_down": {"component": "app", "since": T0, "why": "chain exhausted"}
    }
    assert saved["chain_head"] == {"file": "2026-11-18.jsonl", "offset": 9486, "digest": "ab" * 32}
    assert state_file.load() == state


def approval_entry(**changed: object) -> dict[str, Any]:
    return {**json.loads(json.dumps(CLOSED.to_json())), **changed}


GARBLED_APPROVAL = {
    "unknown status": ({"status": "bogus"}, "status is not one of pending, approved"),
    "status not text": ({"status": 3}, "status is missing or of the wrong type"),
    "reminder time": ({"notified": "soon"}, "notified is not a time"),
    "params not an object": ({"params": [1]}, "params is missing or of the wrong type"),
    "closer not text": ({"closed_by": 7}, "closed_by is missing or of the wrong type"),
}


@pytest.mark.parametrize("damage", list(GARBLED_APPROVAL), ids=list(GARBLED_APPROVAL))
def test_a_garbled_approval_field_is_the_one_line_state_error(tmp_path: Path, damage: str) -> None:
    changed, message = GARBLED_APPROVAL[damage]
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"approvals": {CLOSED.id: approval_entry(**changed)}}))
    with pytest.raises(StateError) as refused:
        StateFile(path).load()
    assert f"approvals.{CLOSED.id}.{message}" in str(refused.value)
    assert "move it aside" in str(refused.value)


def test_an_unknown_approval_status_stops_the_cli_with_one_line(ws: Workspace) -> None:
    ws.write_config(base_config({"app": command_component(["true"], {"noop": ["true"]})}))
    assert ws.run("disable", "app", "--for", "1h", "--reason", "maint").returncode == 0
    state = json.loads((ws.state / "state.json").read_text())
    state["approvals"] = {CLOSED.id: approval_entry(status="bogus")}
    (ws.state / "state.json").write_text(json.dumps(state))
    result = ws.run("approve")
    assert result.returncode == 4
    assert result.stderr.strip().splitlines() == [
        f"state file {ws.state / 'state.json'} is not valid (approvals.{CLOSED.id}.status"
        " is not one of pending, approved, rejected, expired, superseded, not_needed);"
        " move it aside to start afresh"
    ]
