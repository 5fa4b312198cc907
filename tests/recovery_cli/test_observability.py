"""What operators see: history filters and stats, status JSON, metrics, the drill, alerts,
degraded modes, redaction, and the interactive confirmation."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Workspace, base_config, child_env, command_component
from tests.support.core import make_core
from tests.support.receiver import AlertReceiver
from tests.support.terminal import run_on_terminal


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


def test_metrics_text_and_textfile_output(ws: Workspace, tmp_path: Path) -> None:
    ws.write_config(base_config({"app": command_component(["false"], {"fix": ["false"]})}))
    ws.run("recover")
    ws.run("recover")
    text = ws.run("metrics").stdout
    assert (
        'infra_recovery_attempts_total{component="app",outcome="failed",strategy="fix"} 1.0' in text
    )
    assert 'infra_recovery_blocked_total{component="app",reason="cooldown"} 1.0' in text
    assert 'infra_recovery_cooldown_active{component="app"} 1.0' in text
    assert "infra_recovery_last_run_timestamp_seconds" in text
    out = tmp_path / "recovery.prom"
    assert ws.run("metrics", "--output", str(out)).returncode == 0
    written = out.read_text()
    # the same exposition as stdout, but for the run timestamp it was made at
    assert [ln for ln in written.splitlines() if "last_run" not in ln] == [
        ln for ln in text.splitlines() if "last_run" not in ln
    ]
    assert not list(tmp_path.glob(".recovery.prom.*")), "no temp file left behind"


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


def test_live_drill_runs_each_chain_for_real(ws: Workspace, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    component = command_component(["true"], {"fix": ["touch", str(ran)]})
    ws.write_config(base_config({"staging": component}))
    result = ws.run("test", "--live")
    assert result.returncode == 0, result.stdout + result.stderr
    assert ran.exists(), "a live drill runs the chain even though the component is healthy"
    assert [r["trigger"] for r in ws.events("step", "staging")] == ["test"]


def test_version_option(ws: Workspace) -> None:
    from recovery_cli import __version__

    result = ws.run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"recovery {__version__}"
