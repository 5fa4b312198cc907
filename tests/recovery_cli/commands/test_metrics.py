"""``recovery metrics``: Prometheus text on stdout and as a textfile."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import Workspace, base_config, command_component


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
