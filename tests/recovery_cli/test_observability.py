"""What operators see beyond each command's own output: alerts and degraded modes, secrets
kept out of every output, a full disk, the version."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Workspace, base_config, child_env, command_component
from tests.support.core import make_core
from tests.support.receiver import AlertReceiver


@pytest.fixture
def receiver() -> Iterator[AlertReceiver]:
    with AlertReceiver() as running:
        yield running


def test_failed_chain_alerts_and_enters_degraded_mode_then_leaves_it(
    tmp_path: Path, receiver: AlertReceiver
) -> None:
    flag = tmp_path / "flag"
    marks = tmp_path / "marks"
    config = base_config(
        {"app": command_component(["test", "-f", str(flag)], {"fix": ["false"]})},
        cooldown_seconds=0,
    )
    config["degraded_modes"] = {
        "app_unavailable": {
            "component": "app",
            "capabilities": {"search": "off"},
            "on_enter": {"command": ["sh", "-c", f"echo enter >> {marks}"]},
            "on_exit": {"command": ["sh", "-c", f"echo exit >> {marks}"]},
        }
    }
    config["alerting"] = {"alertmanager_url": receiver.url, "webhook_url": receiver.url + "/hook"}
    core = make_core(tmp_path, config)
    core.recover("app")
    assert "app_unavailable" in core.store.load_state().degraded
    paths = [path for path, _ in receiver.received]
    assert paths == ["/api/v2/alerts", "/hook"]
    alert = receiver.received[0][1][0]
    assert alert["labels"] == {
        "alertname": "RecoveryFailed",
        "component": "app",
        "host": core.env.host,
        "severity": "warning",
        "state": "failed",
        "reason": "chain_exhausted",
    }
    assert alert["endsAt"] > alert["startsAt"]
    hook = receiver.received[1][1]
    assert hook["status"] == "firing" and hook["labels"] == alert["labels"]
    flag.touch()
    core.recover("app")
    assert core.store.load_state().degraded == {}
    resolved = [body for path, body in receiver.received[2:] if path == "/hook"]
    assert [b["status"] for b in resolved] == ["resolved"]
    assert marks.read_text().split() == ["enter", "exit"]
    assert [r["event"] for r in core.records() if r["event"].startswith("degraded")] == [
        "degraded_enter",
        "degraded_exit",
    ]


def test_unreachable_alert_target_never_fails_a_recovery(tmp_path: Path) -> None:
    from recovery_cli.orchestrator import RecoverRequest

    config = base_config({"app": command_component(["false"], {"fix": ["true"]})})
    config["alerting"] = {"webhook_url": "http://127.0.0.1:9/nothing", "timeout_seconds": 0.5}
    orchestrator = make_core(tmp_path, config).orchestrator()
    [report] = orchestrator.recover(RecoverRequest(("app",)))
    assert report.outcome == "failed"  # the recovery's own result, not the alert's
    assert orchestrator.warnings and "failed" in orchestrator.warnings[0]


def test_secrets_never_reach_output_or_audit(ws: Workspace, tmp_path: Path) -> None:
    secret = "s3cr3t-token-value"
    probe = ["sh", "-c", 'echo "login failed for token $APP_TOKEN"; exit 2']
    component = command_component(
        probe, {"fix": ["sh", "-c", 'echo "retrying with $APP_TOKEN" >&2; exit 1']}
    )
    component["settings"]["token_env"] = "APP_TOKEN"
    ws.write_config(base_config({"app": component}))
    env = {"APP_TOKEN": secret}
    outputs = [
        ws.run(*args, env=env)
        for args in (["recover"], ["status"], ["history"], ["metrics"], ["status", "--json"])
    ]
    for result in outputs:
        assert secret not in result.stdout + result.stderr
    for path in ws.state.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path
    assert "***" in ws.run("history", "--json", env=env).stdout


def test_full_disk_fails_cleanly(ws: Workspace, tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        (mount / "filler").write_bytes(b"x" * 60_000)
        noisy = ["sh", "-c", "head -c 8000 /dev/zero | tr '\\0' 'x'; exit 1"]
        ws.write_config(
            base_config({"app": command_component(["false"], {"fix": noisy})}, cooldown_seconds=0)
        )
        codes = []
        for _ in range(5):
            result = subprocess.run(
                [*ws.argv("recover")[:5], "--state-dir", str(mount / "state"), "recover"],
                capture_output=True,
                text=True,
                timeout=60,
                env=child_env(),
            )
            codes.append(result.returncode)
            assert "Traceback" not in result.stderr
        assert 4 in codes, codes
        for path in (mount / "state" / "audit").glob("*.jsonl"):
            for line in path.read_text().splitlines():
                json.loads(line)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_version_option(ws: Workspace) -> None:
    from recovery_cli import __version__

    result = ws.run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"recovery {__version__}"
