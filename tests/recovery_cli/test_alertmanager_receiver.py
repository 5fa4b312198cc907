"""A real Alertmanager (Debian ``prometheus-alertmanager``) with ``recovery serve`` as its
webhook receiver: an alert posted to Alertmanager ends in a recovery, once."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.alertmanager import Alertmanager, available, running_alertmanager
from tests.support.api import BOT_TOKEN, api_section, running_api
from tests.support.cli import Workspace, base_config, command_component

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not available(), reason="prometheus-alertmanager is not installed"),
]

RECEIVER = """\
route:
  receiver: recovery
  group_by: [alertname, component]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: recovery
    webhook_configs:
      - url: {url}/api/v1/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: {token_file}
"""


def fire(manager: Alertmanager, **labels: str) -> None:
    body = json.dumps([{"labels": labels, "annotations": {"summary": "app is down"}}]).encode()
    request = urllib.request.Request(
        f"{manager.url}/api/v2/alerts",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def test_an_alert_through_a_real_alertmanager_runs_one_recovery(
    ws: Workspace, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    component = command_component(["test", "-f", str(flag)], {"fix": ["touch", str(flag)]})
    config = base_config({"app": component}, cooldown_seconds=0, max_attempts_per_hour=50)
    config["api"] = api_section()
    ws.write_config(config)
    token_file = tmp_path / "token"
    token_file.write_text(BOT_TOKEN)
    token_file.chmod(0o600)

    with running_api(ws, env={"RECOVERY_HOST": "web-1"}) as api:
        am_config = RECEIVER.format(url=api.base_url, token_file=token_file)
        with running_alertmanager(tmp_path / "am", config_text=am_config) as manager:
            for _ in range(5):  # a flapping check sends the same alert again and again
                fire(manager, alertname="AppDown", component="app", host="web-1")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not _succeeded(ws):
                time.sleep(0.1)
            time.sleep(3)  # group_interval passes twice: any duplicate would have come
            fire(manager, alertname="AppDown", component="app", host="web-1")
            time.sleep(2.5)

    attempts = ws.events("attempt", "app")
    assert [a["outcome"] for a in attempts] == ["started", "success"]
    assert {(a["trigger"], a["operator"]) for a in attempts} == {("alertmanager", "alertmanager")}
    assert attempts[0]["request_reason"] == "alert AppDown firing"
    assert flag.exists()
    assert ws.events("blocked") == []
    decided = [ln for ln in api.lines.lines if "alert: " in ln]
    assert len([ln for ln in decided if "alert: recover:" in ln]) == 1, decided
    assert all("component=app token=alertmanager" in ln for ln in decided)


def _succeeded(ws: Workspace) -> bool:
    return any(a["outcome"] == "success" for a in ws.events("attempt", "app"))
