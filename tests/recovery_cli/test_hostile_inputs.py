"""What a hostile or unlucky operator tried after the hardening: output targets, secrets in
approval ids and state, garbled state and audit files, removed components, lost alerts."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Workspace, base_config, command_component
from tests.support.receiver import AlertReceiver

SECRET = 'Sé"cr\\et%41/+ü=='


def failing(ws: Workspace, **defaults: Any) -> dict[str, Any]:
    component = command_component(["false"], {"fix": ["false"]})
    component["settings"]["token_env"] = "APP_TOKEN"
    config = base_config({"app": component}, **defaults)
    ws.write_config(config)
    return config


def test_metrics_output_never_replaces_a_device_or_the_state_file(ws: Workspace) -> None:
    failing(ws)
    assert ws.run("recover").returncode == 1
    fifo = ws.root / "fifo"  # stands for a device node: never a real one in a test
    os.mkfifo(fifo)
    device = ws.run("metrics", "--output", str(fifo))
    assert device.returncode == 2 and "not a regular file" in device.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    own = ws.run("metrics", "--output", str(ws.state / "state.json"))
    assert own.returncode == 2 and "inside the state dir" in own.stderr
    assert json.loads((ws.state / "state.json").read_text())["version"] == 1
    missing = ws.run("metrics", "--output", str(ws.root / "nowhere" / "x.prom"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    good = ws.run("metrics", "--output", str(ws.root / "recovery.prom"))
    assert (
        good.returncode == 0
        and "infra_recovery_attempts_total" in (ws.root / "recovery.prom").read_text()
    )


def test_secrets_never_leave_through_approval_ids_or_the_state_file(ws: Workspace) -> None:
    failing(ws)
    env = {"APP_TOKEN": SECRET}
    approve = ws.run("approve", SECRET, env=env)
    assert approve.returncode == 2 and "hexadecimal" in approve.stderr
    ws.run("disable", "app", "--for", "1h", "--reason", f"tok {SECRET}", "--as", SECRET, env=env)
    from recovery_cli.redaction import representations

    text = (ws.state / "state.json").read_text()
    for form in representations(SECRET):
        assert form not in text and form.lower() not in approve.stderr
    assert "***" in text


def test_a_percent_encoded_secret_parameter_is_refused(ws: Workspace) -> None:
    component = command_component(["true"], {"fix": ["curl", "http://h/?x=1&api%5Fkey=hunter22"]})
    ws.write_config(base_config({"app": component}))
    result = ws.run("status", "--no-probe")
    assert (
        result.returncode == 2 and "api_key=" in result.stderr and "hunter22" not in result.stderr
    )


def test_an_approval_for_a_removed_component_is_a_clear_refusal(ws: Workspace) -> None:
    component = command_component(["false"], {"fix": ["true"]})
    component["strategies"]["fix"]["approval"] = "required"
    ws.write_config(
        base_config({"app": component, "other": command_component(["true"], {"noop": ["true"]})})
    )
    ws.run("recover", "app")
    (approval_id,) = json.loads((ws.state / "state.json").read_text())["approvals"]
    ws.write_config(base_config({"other": command_component(["true"], {"noop": ["true"]})}))
    result = ws.run("approve", approval_id)
    assert result.returncode == 2 and "no longer has" in result.stderr


def test_a_deeply_nested_plan_in_the_state_file_never_blocks_a_write(ws: Workspace) -> None:
    component = command_component(["false"], {"fix": ["true"]})
    component["strategies"]["fix"]["approval"] = "required"
    ws.write_config(base_config({"app": component}))
    ws.run("recover", "app")
    state = json.loads((ws.state / "state.json").read_text())
    (approval_id,) = state["approvals"]
    deep: dict[str, object] = {}
    for _ in range(600):
        deep = {"x": deep}
    state["approvals"][approval_id]["plan"] = {"would_lose": deep}
    (ws.state / "state.json").write_text(json.dumps(state))

    for args in (("recover", "app"), ("disable", "app", "--for", "1h", "--reason", "t")):
        result = ws.run(*args)
        assert "unexpected error" not in result.stderr, (args, result.stderr)
    rejected = ws.run("approve", approval_id, "--reject", "--reason", "stale")
    assert rejected.returncode == 0, rejected.stderr


GARBLED_STATE = {
    "negative chain head": {
        "chain_head": {"file": "2026-12-01.jsonl", "offset": -1, "digest": "x"}
    },
    "chain head outside audit": {
        "chain_head": {"file": "../../etc/passwd", "offset": 10, "digest": "x"}
    },
    "approval expiry": {
        "approvals": {
            "ab12cd34": {
                "id": "ab12cd34",
                "component": "app",
                "strategy": "fix",
                "status": "pending",
                "plan_hash": "x",
                "created": 1,
                "expires": "soon",
            }
        }
    },
    "disabled until": {"disabled": {"app": {"until": "x", "since": 1}}},
    "life since": {"components": {"app": {"state": "failed", "since": 1e300}}},
    "alert labels": {
        "components": {
            "app": {"state": "failed", "alert": {"labels": [1], "starts_at": 1, "sent_at": 1}}
        }
    },
    "counters": {"counters": {"attempts": {"app": {"x": "y"}}, "durations": {"app": [1, "a"]}}},
}


@pytest.mark.parametrize("damage", list(GARBLED_STATE), ids=list(GARBLED_STATE))
def test_a_garbled_state_file_gives_one_line_never_a_traceback(ws: Workspace, damage: str) -> None:
    failing(ws)
    ws.run("recover")
    state = json.loads((ws.state / "state.json").read_text())
    state.update(GARBLED_STATE[damage])
    (ws.state / "state.json").write_text(json.dumps(state))
    for args in (
        ("status", "--no-probe"),
        ("metrics",),
        ("approve",),
        ("recover",),
        ("history", "--verify"),
    ):
        result = ws.run(*args)
        assert "unexpected error" not in result.stderr, (args, result.stderr)
        assert result.returncode in (0, 1, 3, 4), args
        assert len(result.stderr.strip().splitlines()) <= 2, (args, result.stderr)


def test_a_deeply_nested_state_file_or_audit_line_is_no_traceback(ws: Workspace) -> None:
    failing(ws)
    ws.run("recover")
    newest = sorted((ws.state / "audit").glob("*.jsonl"))[-1]
    with newest.open("a") as handle:
        handle.write('{"ts":"2026-12-01T22:00:00.000000Z","event":"step","data":')
        handle.write("[" * 50_000 + "]" * 50_000 + "}\n")
    for args in (("history",), ("history", "--stats"), ("history", "--verify"), ("metrics",)):
        result = ws.run(*args)
        assert "unexpected error" not in result.stderr, (args, result.stderr)
    (ws.state / "state.json").write_text("[" * 100_000 + "]" * 100_000)
    result = ws.run("status", "--no-probe")
    assert result.returncode == 4 and "nested too deeply" in result.stderr


def test_a_non_numeric_duration_in_the_trail_is_counted_as_zero(ws: Workspace) -> None:
    failing(ws)
    ws.run("recover")
    newest = sorted((ws.state / "audit").glob("*.jsonl"))[-1]
    with newest.open("a") as handle:
        handle.write(
            '{"ts":"2026-12-01T22:00:00.000000Z","event":"attempt","component":"app",'
            '"outcome":"success","duration_s":"fast"}\n'
        )
    result = ws.run("metrics")
    assert result.returncode == 0 and 'outcome="success"' in result.stdout


def test_blank_names_and_reasons_are_refused(ws: Workspace) -> None:
    failing(ws, cooldown_seconds=0, max_attempts_per_hour=1)
    blank = ws.run("recover", "app", "--override-limits", "--reason", "db", "--as", " ")
    assert blank.returncode == 2 and "--as needs a name" in blank.stderr
    empty = ws.run("disable", "app", "--for", "1h", "--reason", "")
    assert empty.returncode == 2 and "--reason" in empty.stderr


@pytest.fixture
def hook() -> Iterator[AlertReceiver]:
    with AlertReceiver() as running:
        yield running


def statuses(hook: AlertReceiver) -> list[str]:
    return [f"{body['status']} {body['labels'].get('component')}" for _, body in hook.received]


def test_a_resolution_no_target_took_is_sent_by_the_next_run(
    ws: Workspace, tmp_path: Path, hook: AlertReceiver
) -> None:
    flag = tmp_path / "flag"
    component = command_component(["test", "-f", str(flag)], {"fix": ["false"]})
    config = base_config({"app": component}, cooldown_seconds=0)
    config["alerting"] = {"webhook_url": hook.url + "/hook"}
    ws.write_config(config)
    ws.run("recover")
    assert statuses(hook) == ["firing app"]
    flag.touch()
    hook.status = 500
    failed = ws.run("recover")
    assert failed.returncode == 0 and "HTTP 500" in failed.stderr
    hook.status = 200
    ws.run("recover")
    assert statuses(hook) == ["firing app", "resolved app"]


def test_the_alert_of_a_removed_component_is_resolved(
    ws: Workspace, tmp_path: Path, hook: AlertReceiver
) -> None:
    down = command_component(["false"], {"fix": ["false"]})
    config = base_config({"app": command_component(["true"], {"noop": ["true"]}), "gone": down})
    config["alerting"] = {"webhook_url": hook.url + "/hook"}
    ws.write_config(config)
    ws.run("recover")
    assert statuses(hook) == ["firing gone"]
    del config["components"]["gone"]
    ws.write_config(config)
    ws.run("recover")
    assert statuses(hook) == ["firing gone", "resolved gone"]
