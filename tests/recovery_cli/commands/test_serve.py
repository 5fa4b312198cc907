"""``recovery serve``: the HTTP API as callers meet it, over real sockets to a real process,
on a state dir the CLI reads too."""

from __future__ import annotations

import json
import signal
import socket
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import (
    ADMIN_TOKEN,
    BOT_TOKEN,
    READ_TOKEN,
    TOKEN_ENV,
    ApiProcess,
    app_config,
    close_streams,
    running_api,
    wait_for,
)
from tests.support.cli import Lines, Workspace
from tests.support.net import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def flag(tmp_path: Path) -> Path:
    return tmp_path / "flag"


@pytest.fixture
def api(ws: Workspace, flag: Path) -> Any:
    ws.write_config(app_config(flag))
    with running_api(ws) as running:
        yield running


# -- who may call ---------------------------------------------------------------------------


def test_no_token_is_401_with_a_bearer_challenge(api: ApiProcess) -> None:
    answer = api.get("/api/v1/status", token=None)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json() == {"error": "a valid bearer token is required"}
    assert api.get("/api/v1/status", token=ADMIN_TOKEN[:-1] + "X").status_code == 401
    assert api.post("/api/v1/components/app/recover", token=None).status_code == 401


def test_a_read_token_reads_but_may_not_change_anything(
    api: ApiProcess, ws: Workspace, flag: Path
) -> None:
    assert api.get("/api/v1/status", token=READ_TOKEN).status_code == 200
    answer = api.post("/api/v1/components/app/recover", token=READ_TOKEN)
    assert answer.status_code == 403
    assert "role read" in answer.json()["error"]
    assert not flag.exists() and ws.events("attempt") == []


def test_an_admin_token_recovers_and_the_audit_names_it_and_the_client(
    api: ApiProcess, ws: Workspace, flag: Path
) -> None:
    answer = api.post("/api/v1/components/app/recover", {"reason": "pager 4411"})

    assert answer.status_code == 200, answer.text
    assert answer.headers["x-recovery-exit-code"] == "0"
    [report] = answer.json()
    assert (report["component"], report["outcome"], report["code"]) == ("app", "recovered", 0)
    assert flag.exists()
    attempts = ws.events("attempt", "app")
    assert {a["operator"] for a in attempts} == {"oncall"}
    assert {a["trigger"] for a in attempts} == {"api"}
    for record in ws.records():
        host, _, port = record["client"].rpartition(":")
        assert host == "127.0.0.1" and port.isdigit()
        assert record["request_reason"] == "pager 4411"


def test_past_the_rate_limit_is_429_and_writes_nothing(ws: Workspace, flag: Path) -> None:
    ws.write_config(app_config(flag, requests=3))
    with running_api(ws) as api:
        codes = [api.post("/api/v1/components/app/enable").status_code for _ in range(3)]
        refused = api.post("/api/v1/components/app/recover")
        attempts_when_refused = ws.events("attempt")
        other_token = api.post("/api/v1/components/app/recover", token=BOT_TOKEN)

    assert codes == [200, 200, 200]
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert "rate limit" in refused.json()["error"]
    assert attempts_when_refused == []
    assert other_token.status_code == 200  # the limit is per token
    assert {a["operator"] for a in ws.events("attempt")} == {"alertmanager"}


def test_tokens_shorter_than_16_characters_or_unset_are_refused_at_start(
    ws: Workspace, flag: Path
) -> None:
    ws.write_config(app_config(flag))
    short = ws.run(
        "serve", "--listen", "127.0.0.1:1", env={**TOKEN_ENV, "TEST_ADMIN_TOKEN": "x" * 15}
    )
    unset = ws.run("serve", "--listen", "127.0.0.1:1", env={"TEST_READ_TOKEN": READ_TOKEN})

    assert short.returncode == 2
    assert short.stderr.strip() == (
        "api.tokens.1 (oncall): the token in TEST_ADMIN_TOKEN has fewer than 16 characters"
    )
    assert unset.returncode == 2
    assert unset.stderr.strip() == (
        "api.tokens.1 (oncall): environment variable TEST_ADMIN_TOKEN is not set"
    )


def test_without_tokens_reads_are_open_on_loopback_and_changes_refused(
    ws: Workspace, flag: Path
) -> None:
    config = app_config(flag)
    del config["api"]
    ws.write_config(config)
    with running_api(ws) as api:
        status = api.get("/api/v1/status", token=None)
        change = api.post("/api/v1/components/app/recover", token=None)

    assert status.status_code == 200 and status.json()[0]["component"] == "app"
    assert change.status_code == 403
    assert "none is configured" in change.json()["error"]
    assert not flag.exists()


# -- where it listens -----------------------------------------------------------------------


def test_a_non_loopback_address_needs_tokens_and_tls_or_insecure(ws: Workspace, flag: Path) -> None:
    config = app_config(flag)
    ws.write_config(config)
    no_tls = ws.run("serve", "--listen", "0.0.0.0:1", env=TOKEN_ENV)
    del config["api"]
    ws.write_config(config)
    nothing = ws.run("serve", "--listen", "[::]:1", env=TOKEN_ENV)
    named = ws.run("serve", "--listen", "example.org:1", env=TOKEN_ENV)

    assert no_tls.returncode == 2
    assert no_tls.stderr.strip() == (
        "--listen 0.0.0.0:1: not a loopback address, and api.ssl_certfile not configured; "
        "add them, or pass --insecure"
    )
    assert nothing.returncode == 2 and "api.tokens and api.ssl_certfile" in nothing.stderr
    assert named.returncode == 2 and "not a loopback address" in named.stderr


def test_insecure_allows_a_non_loopback_address(ws: Workspace, flag: Path) -> None:
    ws.write_config(app_config(flag))
    port = free_port("0.0.0.0")
    proc = ws.popen("serve", "--listen", f"0.0.0.0:{port}", "--insecure", env=TOKEN_ENV)
    lines = Lines(proc)
    try:
        lines.wait_for("API listening")
        answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert answer.json()["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        close_streams(proc)


def test_bad_listen_values_and_an_address_in_use_are_one_line_and_exit_2(
    ws: Workspace, flag: Path, api: ApiProcess
) -> None:
    port = api.base_url.rsplit(":", 1)[1]
    in_use = ws.run("serve", "--listen", f"127.0.0.1:{port}", env=TOKEN_ENV)
    for bad in ("9464", "127.0.0.1:0", "127.0.0.1:99999", "unix:relative.sock", ":80"):
        result = ws.run("serve", "--listen", bad, env=TOKEN_ENV)
        assert result.returncode == 2, bad
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert in_use.returncode == 2
    assert in_use.stderr.strip() == f"cannot listen on 127.0.0.1:{port}: Address already in use"


def test_a_unix_socket_is_owner_only_and_removed_on_sigterm(
    ws: Workspace, flag: Path, tmp_path: Path
) -> None:
    ws.write_config(app_config(flag))
    path = tmp_path / "api.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # a socket a dead process left: replaced
    proc = ws.popen("serve", "--listen", f"unix:{path}", env=TOKEN_ENV)
    lines = Lines(proc)
    try:
        lines.wait_for("API listening")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport, base_url="http://api") as client:
            answer = client.post(
                "/api/v1/components/app/recover",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
        assert answer.status_code == 200 and flag.exists()
        assert {r["client"] for r in ws.records()} == {"unix"}
        again = ws.run("serve", "--listen", f"unix:{path}", env=TOKEN_ENV)
        assert again.returncode == 2 and "another process is serving there" in again.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        close_streams(proc)
    assert not path.exists()


def test_a_file_at_the_unix_socket_path_is_left_alone(
    ws: Workspace, flag: Path, tmp_path: Path
) -> None:
    ws.write_config(app_config(flag))
    path = tmp_path / "precious"
    path.write_text("keep me")
    result = ws.run("serve", "--listen", f"unix:{path}", env=TOKEN_ENV)
    assert result.returncode == 2
    assert result.stderr.strip() == f"cannot listen on unix:{path}: it exists and is not a socket"
    assert path.read_text() == "keep me"


# -- what it answers ------------------------------------------------------------------------


def test_reads_answer_what_the_cli_json_prints(api: ApiProcess, ws: Workspace) -> None:
    assert api.post("/api/v1/components/app/recover").status_code == 200

    status = api.get("/api/v1/status", probe="false").json()
    cli_status = json.loads(ws.run("status", "--no-probe", "--json").stdout)
    one = api.get("/api/v1/components/app", probe="false").json()
    history = api.get("/api/v1/history", component="app", outcome="success", limit=5).json()
    cli_history = json.loads(
        ws.run("history", "-c", "app", "--outcome", "success", "--limit", "5", "--json").stdout
    )

    assert _without_clock(status) == _without_clock(cli_status)
    assert _without_clock([one]) == _without_clock(cli_status)
    assert history == cli_history and len(history) == 2  # the step and the attempt
    assert api.get("/api/v1/approvals").json() == []
    assert api.get("/api/v1/components/nope").status_code == 404
    assert api.get("/api/v1/history", component="nope").status_code == 404
    assert api.get("/api/v1/history", limit=0).status_code == 422
    bad_time = api.get("/api/v1/history", since="yesterday")
    assert bad_time.status_code == 400 and "invalid time" in bad_time.json()["error"]


def test_stats_answer_both_views_of_history_stats(api: ApiProcess, ws: Workspace) -> None:
    assert api.post("/api/v1/components/app/recover").status_code == 200

    stats = api.get("/api/v1/stats", component="app", since="24h").json()
    by_strategy = ws.run("history", "--stats", "-c", "app", "--last", "24h", "--json")
    by_component = ws.run(
        "history", "--stats", "-c", "app", "--last", "24h", "--by", "component", "--json"
    )

    assert stats["strategies"] == json.loads(by_strategy.stdout)
    assert [row["runs"] for row in stats["strategies"]] == [1]
    assert _without_uptime(stats["components"]) == _without_uptime(json.loads(by_component.stdout))
    assert [row["component"] for row in stats["components"]] == ["app"]
    assert api.get("/api/v1/stats", component="nope").status_code == 404
    assert api.get("/api/v1/stats", since="yesterday").status_code == 400


def _without_uptime(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Outcome rows without the time-based figures (the two answers are moments apart)."""
    moving = ("uptime_pct", "observed_s", "healthy_s")
    return [{k: v for k, v in row.items() if k not in moving} for row in rows]


def test_metrics_is_the_recovery_metrics_exposition(api: ApiProcess, ws: Workspace) -> None:
    api.post("/api/v1/components/app/recover")
    answer = api.get("/metrics")
    cli = ws.run("metrics").stdout

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert (
        'infra_recovery_attempts_total{component="app",outcome="success",strategy="fix"} 1.0'
        in answer.text
    )
    assert _metric_names(answer.text) == _metric_names(cli)
    assert api.get("/metrics", token=None).status_code == 401


def test_disable_blocks_recovery_and_enable_lifts_it(
    api: ApiProcess, ws: Workspace, flag: Path
) -> None:
    disabled = api.post("/api/v1/components/app/disable", {"for": "2h", "reason": "failover"})
    blocked = api.post("/api/v1/components/app/recover")
    no_reason = api.post("/api/v1/components/app/disable", {"for": "2h"})
    bad_for = api.post("/api/v1/components/app/disable", {"for": "soon", "reason": "x"})
    enabled = api.post("/api/v1/components/app/enable")
    again = api.post("/api/v1/components/app/enable")

    assert disabled.status_code == 200 and disabled.json()["component"] == "app"
    assert blocked.headers["x-recovery-exit-code"] == "3"
    assert blocked.json()[0]["outcome"] == "blocked" and not flag.exists()
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["error"]
    assert bad_for.status_code == 400 and "invalid duration" in bad_for.json()["error"]
    assert enabled.json() == {"component": "app", "enabled": True}
    assert again.json() == {"component": "app", "enabled": False}
    [record] = ws.events("disabled", "app")
    assert record["operator"] == "oncall" and record["detail"].endswith(": failover")


def test_an_approval_is_listed_then_approved_or_rejected_over_the_api(
    ws: Workspace, flag: Path
) -> None:
    config = app_config(flag)
    config["components"]["app"]["strategies"]["fix"]["approval"] = "required"
    ws.write_config(config)
    with running_api(ws) as api:
        waiting = api.post("/api/v1/components/app/recover")
        [pending] = api.get("/api/v1/approvals").json()
        cli_pending = json.loads(ws.run("approve", "--json").stdout)
        no_reason = api.post(f"/api/v1/approvals/{pending['id']}", {"decision": "reject"})
        approved = api.post(f"/api/v1/approvals/{pending['id']}", {"decision": "approve"})
        reused = api.post(f"/api/v1/approvals/{pending['id']}", {"decision": "approve"})
        unknown = api.post("/api/v1/approvals/ffffffff", {"decision": "approve"})

    assert waiting.headers["x-recovery-exit-code"] == "3"
    assert waiting.json()[0]["outcome"] == "awaiting_approval"
    assert [pending] == cli_pending
    assert no_reason.status_code == 400
    assert approved.status_code == 200 and approved.headers["x-recovery-exit-code"] == "0"
    assert flag.exists()
    [record] = ws.events("approved", "app")
    assert record["operator"] == "oncall"
    assert reused.status_code == 409 and "single-use" in reused.json()["error"]
    assert unknown.status_code == 400


def test_a_rejection_is_recorded_with_its_reason(ws: Workspace, flag: Path) -> None:
    config = app_config(flag)
    config["components"]["app"]["strategies"]["fix"]["approval"] = "required"
    ws.write_config(config)
    with running_api(ws) as api:
        approval_id = api.post("/api/v1/components/app/recover").json()[0]["approval_id"]
        answer = api.post(
            f"/api/v1/approvals/{approval_id}", {"decision": "reject", "reason": "not now"}
        )
    assert answer.status_code == 200 and answer.json()["status"] == "rejected"
    [record] = ws.events("rejected", "app")
    assert record["operator"] == "oncall" and "not now" in json.dumps(record)
    assert not flag.exists()


def test_bodies_of_the_wrong_shape_or_size_are_refused(api: ApiProcess, ws: Workspace) -> None:
    with api.client() as client:
        unknown_field = client.post("/api/v1/components/app/recover", json={"force": True})
        huge = client.post(
            "/api/v1/alertmanager",
            content=b"[" + b"0," * 600_000 + b"0]",
            headers={"content-type": "application/json"},
        )
        not_json = client.post(
            "/api/v1/alertmanager", content=b"{not json", headers={"content-type": "text/plain"}
        )
        no_alerts = client.post("/api/v1/alertmanager", json={"status": "firing"})

    assert unknown_field.status_code == 422 and "force" in unknown_field.json()["error"]
    assert huge.status_code == 413
    assert not_json.status_code == 400 and not_json.json() == {"error": "the body is not JSON"}
    assert no_alerts.status_code == 400 and "no 'alerts' list" in no_alerts.json()["error"]
    assert ws.events("attempt") == []


def test_the_openapi_schema_names_every_route(api: ApiProcess) -> None:
    schema = api.get("/openapi.json", token=None).json()
    assert set(schema["paths"]) == {
        "/healthz",
        "/metrics",
        "/api/v1/status",
        "/api/v1/components/{name}",
        "/api/v1/history",
        "/api/v1/stats",
        "/api/v1/approvals",
        "/api/v1/components/{name}/recover",
        "/api/v1/components/{name}/disable",
        "/api/v1/components/{name}/enable",
        "/api/v1/approvals/{approval_id}",
        "/api/v1/alertmanager",
    }
    assert api.get("/healthz", token=None).json()["status"] == "ok"


def test_secrets_never_reach_an_answer_or_the_audit(ws: Workspace, flag: Path) -> None:
    secret = "hunter2-the-redis-password"
    config = app_config(flag)
    config["components"]["app"]["settings"]["password_env"] = "APP_PASSWORD"
    config["components"]["app"]["strategies"]["fix"]["params"]["command"] = [
        "sh",
        "-c",
        f"echo $APP_PASSWORD >&2; touch {flag}",
    ]
    ws.write_config(config)
    with running_api(ws, env={"APP_PASSWORD": secret}) as api:
        answers = [
            api.post("/api/v1/components/app/recover", {"reason": f"pw is {secret}"}).text,
            api.get("/api/v1/history").text,
            api.get("/api/v1/status").text,
        ]
    assert flag.exists()
    for text in answers:
        assert secret not in text
    for path in (ws.state / "audit").glob("*.jsonl"):
        assert secret not in path.read_text()
    assert all(ADMIN_TOKEN not in p.read_text() for p in (ws.state / "audit").glob("*.jsonl"))


# -- the Alertmanager receiver --------------------------------------------------------------


def notification(component: str = "app", status: str = "firing", **labels: str) -> dict[str, Any]:
    alert = {
        "status": status,
        "labels": {"alertname": "AppDown", "component": component, **labels},
        "annotations": {},
        "startsAt": "2026-12-01T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "f00d",
    }
    return {
        "version": "4",
        "status": status,
        "receiver": "recovery",
        "groupLabels": {"alertname": "AppDown"},
        "commonLabels": alert["labels"],
        "alerts": [alert],
    }


def test_twenty_duplicate_notifications_run_exactly_one_recovery(
    ws: Workspace, flag: Path, tmp_path: Path
) -> None:
    slow_fix = ["sh", "-c", f"sleep 1; touch {flag}"]
    config = app_config(flag)
    config["components"]["app"]["strategies"]["fix"]["params"]["command"] = slow_fix
    ws.write_config(config)
    with running_api(ws) as api:
        with ThreadPoolExecutor(20) as pool:
            answers = list(
                pool.map(
                    lambda _: api.post("/api/v1/alertmanager", notification(), token=BOT_TOKEN),
                    range(20),
                )
            )
        wait_for(lambda: len(ws.events("attempt", "app")) == 2)
        after = api.post("/api/v1/alertmanager", notification(), token=BOT_TOKEN)
        time.sleep(0.5)

    assert {a.status_code for a in answers} == {202}
    actions = [a.json()["verdicts"][0]["action"] for a in answers]
    assert actions.count("recover") == 1 and actions.count("duplicate") == 19
    assert after.json()["verdicts"][0] == {
        "component": "app",
        "action": "duplicate",
        "why": "recovered less than 300s ago",
    }
    attempts = ws.events("attempt", "app")
    assert [a["outcome"] for a in attempts] == ["started", "success"]
    assert {(a["trigger"], a["operator"]) for a in attempts} == {("alertmanager", "alertmanager")}
    assert attempts[0]["request_reason"] == "alert AppDown firing"
    assert ws.events("blocked") == []
    assert flag.exists()


def test_the_receiver_ignores_what_it_must_not_act_on(ws: Workspace, flag: Path) -> None:
    ws.write_config(app_config(flag))
    cases = [
        notification(status="resolved"),
        notification(component="nope"),
        notification(host="another-host"),
        {"alerts": [{"status": "firing", "labels": {"alertname": "AppDown"}}]},
        {
            "alerts": [
                {"status": "firing", "labels": {"alertname": "RecoveryFailed", "component": "app"}}
            ]
        },
    ]
    with running_api(ws, env={"RECOVERY_HOST": "recovery-test-host"}) as api:
        whys = [api.post("/api/v1/alertmanager", c, token=BOT_TOKEN).json() for c in cases]
        read_only = api.post("/api/v1/alertmanager", notification(), token=READ_TOKEN)

    assert [w["verdicts"][0]["action"] for w in whys] == ["ignored"] * 5
    assert [w["verdicts"][0]["why"] for w in whys] == [
        "alert is resolved",
        "not a configured component",
        "for host 'another-host', not 'recovery-test-host'",
        "no 'component' label",
        "one of this tool's own alerts",
    ]
    assert ws.events("attempt") == []
    assert read_only.status_code == 403


# -- signals --------------------------------------------------------------------------------


def test_sighup_reloads_tokens_and_a_broken_config_keeps_the_old_ones(
    ws: Workspace, flag: Path
) -> None:
    config = app_config(flag)
    ws.write_config(config)
    new_token = "rotated-admin-token-0123456789"
    with running_api(ws, env={"NEW_ADMIN_TOKEN": new_token}) as api:
        config["api"]["tokens"][1]["env"] = "NEW_ADMIN_TOKEN"
        ws.write_config(config)
        api.proc.send_signal(signal.SIGHUP)
        api.lines.wait_for("config reloaded")
        rotated = api.post("/api/v1/components/app/enable", token=new_token)
        old = api.post("/api/v1/components/app/enable", token=ADMIN_TOKEN)

        ws.config.write_text("version: 1\ncomponents: {app: {kind: nope, chain: []}}\n")
        api.proc.send_signal(signal.SIGHUP)
        refused = api.lines.wait_for("config reload refused")
        still = api.post("/api/v1/components/app/enable", token=new_token)
        code = api.stop()

    assert rotated.status_code == 200 and old.status_code == 401
    assert f"{ws.config}:" in refused and still.status_code == 200
    assert code == 0
    api.lines.wait_for("stopping on SIGTERM")


def test_watch_listen_serves_the_api_beside_the_loop(ws: Workspace, flag: Path) -> None:
    ws.write_config(app_config(flag))
    with running_api(ws, "--interval", "60", command="watch") as api:
        api.lines.wait_for("outcome=success")  # the watch loop's own first run
        flag.unlink()
        answer = api.post("/api/v1/components/app/recover", {"reason": "from the api"})
        status = api.get("/api/v1/components/app", probe="true").json()
        code = api.stop()

    assert answer.status_code == 200 and answer.json()[0]["outcome"] == "recovered"
    assert status["health"] == "healthy"
    triggers = [a["trigger"] for a in ws.events("attempt", "app") if a["outcome"] == "success"]
    assert triggers == ["watch", "api"]
    assert code == 0
    api_lines = [ln for ln in api.lines.lines if ln.startswith("attempt ")]
    assert len(api_lines) == 4  # the API's records are logged as the loop's are


# -- helpers --------------------------------------------------------------------------------


def _without_clock(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Status rows without the fields that move with the clock."""
    moving = ("next_allowed", "explain", "cooldown_left_s")
    return [{k: v for k, v in row.items() if k not in moving} for row in rows]


def _metric_names(text: str) -> set[str]:
    return {ln.split()[2] for ln in text.splitlines() if ln.startswith("# TYPE ")}
