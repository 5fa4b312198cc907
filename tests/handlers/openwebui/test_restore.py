"""Three-way restore_config, and running on a fallback as a state, against a real
``open-webui serve`` with two model backends: connection 0 serves the primary model,
connection 1 the fallback. The primary's outage is its stub stopped (connection refused).

Also here, on a server of its own (sign-ins count against a per-email limit of the
server): what a stale credential of the tool is classified as, and the drill's sign-in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recovery_cli.errors import ExitCode
from recovery_cli.handlers.base import LOST, WOULD_LOSE, Health
from recovery_cli.handlers.openwebui.handler import OpenWebUIHandler
from recovery_cli.handlers.openwebui.kind import KIND
from tests.handlers.openwebui.helpers import FALLBACK, PRIMARY, handler_for, run
from tests.support.cli import Workspace
from tests.support.openwebui_server import Admin, OpenWebUIServer, Stack, expired_copy, module_stack

pytestmark = pytest.mark.slow

PERSONS_BANNER = {
    "id": "maintenance-tonight",
    "type": "info",
    "title": "Maintenance",
    "content": "Planned maintenance at 22:00.",
    "dismissible": True,
    "timestamp": 1,
}
TOOL_BANNER = "recovery-cli-openwebui"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from module_stack(tmp_path_factory, backends=((PRIMARY,), (FALLBACK,)))


@pytest.fixture(scope="module")
def pristine(admin: Admin) -> dict[str, Any]:
    return admin.export()


@pytest.fixture(autouse=True)
def clean(stack: Stack, pristine: dict[str, Any]) -> Iterator[None]:
    yield
    for stub in stack.stubs:
        stub.start()
        stub.recover()
    stack.admin.put_back(pristine)


@pytest.fixture
def handler(server: OpenWebUIServer, admin: Admin, tmp_path: Path) -> OpenWebUIHandler:
    return handler_for(
        server.url,
        tmp_path,
        {"OWUI_API_KEY": admin.api_key},
        params={"model_failover": {"fallback_model": FALLBACK}},
        chat_smoke_test=True,
    )


def default_model(admin: Admin) -> str:
    return str(admin.get("/api/v1/configs/models")["DEFAULT_MODELS"])


def banner_ids(admin: Admin) -> list[str]:
    return [b["id"] for b in admin.get("/api/v1/configs/banners")]


def post_persons_banner(admin: Admin) -> None:
    banners = admin.get("/api/v1/configs/banners")
    admin.post("/api/v1/configs/banners", {"banners": [*banners, PERSONS_BANNER]})


def edit_connection_1(admin: Admin) -> dict[str, Any]:
    """What an admin does to the healthy connection during the outage: tags it."""
    connections = admin.get("/openai/config")
    configs = dict(connections["OPENAI_API_CONFIGS"])
    configs["1"] = {**configs.get("1", {}), "tags": [{"name": "edited-during-outage"}]}
    admin.post("/openai/config/update", {**connections, "OPENAI_API_CONFIGS": configs})
    return dict(configs["1"])


def fail_over(stack: Stack, handler: OpenWebUIHandler) -> None:
    stack.stubs[0].stop()
    down = handler.probe()
    assert down.failure_type == "upstream_unavailable", down.detail
    switched = run(handler, "model_failover")
    assert switched.ok and switched.data["new_default"] == FALLBACK, switched.detail


# -- running on a fallback, and the three-way restore -------------------------------------


def test_after_failover_the_probe_marks_the_fallback_until_restored(
    stack: Stack, admin: Admin, handler: OpenWebUIHandler
) -> None:
    before = handler.probe()
    assert before.healthy and before.marks == () and before.follow_up is None, before.detail
    fail_over(stack, handler)

    waiting = handler.probe()
    assert waiting.health is Health.HEALTHY, waiting.detail
    assert (waiting.marks, waiting.follow_up) == (("on_fallback",), None)
    assert FALLBACK in waiting.detail and f"waits until the primary {PRIMARY}" in waiting.detail

    stack.stubs[0].start()
    due = handler.probe()
    assert due.healthy and due.marks == ("on_fallback",), due.detail
    assert due.follow_up == "restore_config"

    restored = run(handler, "restore_config")
    assert restored.ok, restored.detail
    after = handler.probe()
    assert after.healthy and after.marks == () and after.follow_up is None, after.detail
    assert handler.files.load_changes() == {}


def test_restore_keeps_what_a_person_changed_during_the_outage(
    stack: Stack, admin: Admin, handler: OpenWebUIHandler
) -> None:
    fail_over(stack, handler)
    post_persons_banner(admin)
    edited = edit_connection_1(admin)
    stack.stubs[0].start()

    plan = run(handler, "restore_config", dry_run=True)
    assert plan.ok and plan.data[WOULD_LOSE]["count"] == 0, plan.detail
    assert plan.data["restore_keys"] == ["DEFAULT_MODELS"] and plan.data["conflicts"] == []
    assert default_model(admin) == FALLBACK  # the dry run wrote nothing

    restored = run(handler, "restore_config")
    assert restored.ok, restored.detail
    assert restored.data["restored_keys"] == ["DEFAULT_MODELS"]
    assert restored.data["conflicts"] == [] and LOST not in restored.data
    assert default_model(admin) == PRIMARY
    assert banner_ids(admin) == [PERSONS_BANNER["id"]]
    assert admin.get("/openai/config")["OPENAI_API_CONFIGS"]["1"] == edited


def test_degradation_is_undone_key_by_key_and_a_persons_banner_survives(
    stack: Stack, admin: Admin, handler: OpenWebUIHandler
) -> None:
    stack.stubs[0].stop()
    for _ in range(2):  # a second run keeps what was there before the first as the baseline
        degraded = run(handler, "graceful_degradation")
        assert degraded.ok and degraded.data["disabled_connections"] == [0], degraded.detail
    post_persons_banner(admin)
    edited = edit_connection_1(admin)
    assert banner_ids(admin) == [TOOL_BANNER, PERSONS_BANNER["id"]]

    refused = run(handler, "restore_config")  # connection 0's backend is still down
    assert (refused.ok, refused.failure_type) == (False, "upstream_unavailable"), refused.detail

    stack.stubs[0].start()
    restored = run(handler, "restore_config")
    assert restored.ok and restored.data["exit_degraded"] is True, restored.detail
    assert banner_ids(admin) == [PERSONS_BANNER["id"]]  # only the tool's banner went
    configs = admin.get("/openai/config")["OPENAI_API_CONFIGS"]
    assert "0" not in configs  # switched on again, exactly as before: no entry of its own
    assert configs["1"] == edited


def test_a_key_both_changed_is_a_conflict_left_alone_unless_overridden(
    stack: Stack, admin: Admin, handler: OpenWebUIHandler
) -> None:
    fail_over(stack, handler)
    persons_choice = f"{FALLBACK},{PRIMARY}"
    admin.set_default_model(persons_choice)
    post_persons_banner(admin)
    stack.stubs[0].start()
    assert handler.probe().marks == ()  # the default is the person's now, not our fallback

    kept = run(handler, "restore_config")
    assert kept.ok and kept.data["conflicts"] == ["DEFAULT_MODELS"], kept.detail
    assert "DEFAULT_MODELS" in kept.detail and "--override-conflicts" in kept.detail
    assert default_model(admin) == persons_choice
    assert banner_ids(admin) == [PERSONS_BANNER["id"]]
    assert list(handler.files.load_changes()) == ["DEFAULT_MODELS"]  # kept for an override

    plan = run(handler, "restore_config", dry_run=True, override_conflicts=True)
    assert plan.data[WOULD_LOSE]["count"] == 1, plan.detail
    assert plan.data[WOULD_LOSE]["items"] == ["DEFAULT_MODELS"]
    assert default_model(admin) == persons_choice

    overridden = run(handler, "restore_config", override_conflicts=True)
    assert overridden.ok, overridden.detail
    assert default_model(admin) == PRIMARY
    assert overridden.data[LOST]["items"] == ["DEFAULT_MODELS"]
    assert overridden.data["overwritten"] == {"DEFAULT_MODELS": persons_choice}
    assert banner_ids(admin) == [PERSONS_BANNER["id"]]
    assert handler.files.load_changes() == {}


# -- a stale credential of the tool, and the drill's sign-in ------------------------------


def test_a_stale_tool_credential_is_a_credential_failure_users_do_not_feel(
    server: OpenWebUIServer, admin: Admin, tmp_path: Path
) -> None:
    environ = {"OWUI_EMAIL": server.admin_email, "OWUI_PASSWORD": "stale-password"}
    handler = handler_for(server.url, tmp_path, environ, chat_smoke_test=True)
    handler.files.save_token(expired_copy(admin.token, server.secret_key), time.time() + 3600)
    user_chat = admin.client.post(
        "/api/chat/completions",
        json={"model": PRIMARY, "messages": [{"role": "user", "content": "hi"}], "stream": False},
        headers={"Authorization": f"Bearer {admin.api_key}"},
    )
    assert user_chat.status_code == 200  # people chat on

    probe = handler.probe()
    assert (probe.health, probe.failure_type) == (Health.DEGRADED, "token_invalid"), probe.detail
    refresh = run(handler, "token_refresh")
    assert refresh.failure_type == "auth_invalid_credentials", refresh.detail
    for failure_type in (probe.failure_type, refresh.failure_type):
        assert failure_type not in KIND.degraded_failure_types


def test_the_drill_signs_in_for_real_a_stored_token_does_not_stand_in(
    server: OpenWebUIServer, admin: Admin, tmp_path: Path
) -> None:
    environ = {"OWUI_EMAIL": server.admin_email, "OWUI_PASSWORD": "wrong-password-1"}
    handler = handler_for(server.url, tmp_path, environ)
    handler.files.save_token(admin.sign_in(server.admin_email, server.admin_password), None)
    assert handler.probe().healthy  # the stored token works

    checks = {c.name: c for c in handler.preflight("token_refresh")}
    signin = checks["sign-in with the password works"]
    assert not signin.ok and "$OWUI_PASSWORD" in signin.detail, signin.detail
    assert "auth_invalid_credentials" in signin.detail and "wrong-password-1" not in signin.detail
    assert len(handler.files.signins()["attempts"]) == 1  # counted against the budget

    right = handler_for(server.url, tmp_path, {**environ, "OWUI_PASSWORD": server.admin_password})
    passed = {c.name: c for c in right.preflight("token_refresh")}
    assert passed["sign-in with the password works"].ok, passed
    assert len(right.files.signins()["attempts"]) == 2


def test_the_drill_skips_the_sign_in_when_the_budget_is_spent(
    server: OpenWebUIServer, tmp_path: Path
) -> None:
    environ = {"OWUI_EMAIL": server.admin_email, "OWUI_PASSWORD": server.admin_password}
    params = {"token_refresh": {"max_signins_per_window": 1}}
    handler = handler_for(server.url, tmp_path, environ, params=params)
    handler.files.record_signin(time.time(), 180.0)
    check = {c.name: c for c in handler.preflight("token_refresh")}[
        "sign-in with the password works"
    ]
    assert check.ok and check.detail.startswith("SKIPPED") and "cap 1" in check.detail
    assert len(handler.files.signins()["attempts"]) == 1  # no sign-in was spent on it


# -- the same, through the real CLI (the core's follow-up, marks and --override-conflicts) --


def cli_config(server: OpenWebUIServer, **settings: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "defaults": {
            "cooldown_seconds": 0,
            "max_attempts_per_hour": 50,
            "retry": {"attempts": 1, "initial_delay": 0, "jitter": False},
        },
        "components": {
            "openwebui": {
                "kind": "openwebui",
                "settings": {
                    "url": server.url,
                    "api_key_env": "OWUI_API_KEY",
                    "chat_smoke_test": True,
                    **settings,
                },
                "chain": ["model_failover"],
                "strategies": {"model_failover": {"params": {"fallback_model": FALLBACK}}},
            }
        },
    }


def cli_fail_over(stack: Stack, root: Path) -> tuple[Workspace, dict[str, str]]:
    """The primary's backend dies; ``recovery recover`` fails over to the fallback."""
    ws = Workspace(root)
    env = {"OWUI_API_KEY": stack.admin.api_key}
    ws.write_config(cli_config(stack.server))
    stack.stubs[0].stop()
    outage = ws.run("recover", "openwebui", env=env, timeout=120)
    assert outage.returncode == 0, outage.stdout + outage.stderr
    assert default_model(stack.admin) == FALLBACK
    return ws, env


def test_cli_fails_over_marks_it_and_the_follow_up_restores_a_persons_edits_kept(
    stack: Stack, admin: Admin, tmp_path: Path
) -> None:
    ws, env = cli_fail_over(stack, tmp_path)
    status = json.loads(ws.run("status", "--json", env=env).stdout)[0]
    assert status["marks"] == ["on_fallback"], status

    post_persons_banner(admin)
    edited = edit_connection_1(admin)
    stack.stubs[0].start()
    back = ws.run("recover", "openwebui", env=env, timeout=120)
    assert back.returncode == 0, back.stdout + back.stderr
    steps = [(r["strategy"], r["outcome"]) for r in ws.events("step", "openwebui")]
    assert steps == [("model_failover", "success"), ("restore_config", "success")]
    assert default_model(admin) == PRIMARY
    assert banner_ids(admin) == [PERSONS_BANNER["id"]]
    assert admin.get("/openai/config")["OPENAI_API_CONFIGS"]["1"] == edited
    assert json.loads(ws.run("status", "--json", env=env).stdout)[0]["marks"] == []


def test_cli_override_conflicts_restores_a_key_a_person_changed(
    stack: Stack, admin: Admin, tmp_path: Path
) -> None:
    ws, env = cli_fail_over(stack, tmp_path)
    persons_choice = f"{FALLBACK},{PRIMARY}"
    admin.set_default_model(persons_choice)
    stack.stubs[0].start()

    restore = ("recover", "openwebui", "--strategy", "restore_config", "--force")
    kept = ws.run(*restore, env=env, timeout=120)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert default_model(admin) == persons_choice
    assert ws.events("step", "openwebui")[-1]["data"]["conflicts"] == ["DEFAULT_MODELS"]

    overridden = ws.run(*restore, "--override-conflicts", env=env, timeout=120)
    # a person's value was overwritten: recovered, with that loss on record
    assert overridden.returncode == ExitCode.RECOVERED_WITH_LOSS, overridden.stdout
    assert default_model(admin) == PRIMARY
    last = ws.events("step", "openwebui")[-1]
    assert last["data"]["overwritten"] == {"DEFAULT_MODELS": persons_choice}


def test_cli_warns_when_required_models_name_the_primary(
    server: OpenWebUIServer, admin: Admin, tmp_path: Path
) -> None:
    ws = Workspace(tmp_path)
    ws.write_config(cli_config(server, required_models=[PRIMARY]))
    proc = ws.run("recover", "openwebui", env={"OWUI_API_KEY": admin.api_key}, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "settings.required_models" in proc.stderr and PRIMARY in proc.stderr


def test_cli_a_stale_tool_credential_enters_no_degraded_mode(
    server: OpenWebUIServer, admin: Admin, tmp_path: Path
) -> None:
    ws = Workspace(tmp_path)
    config = cli_config(server, email_env="OWUI_EMAIL", password_env="OWUI_PASSWORD")
    config["components"]["openwebui"]["settings"].pop("api_key_env")
    config["components"]["openwebui"]["chain"] = ["token_refresh"]
    config["degraded_modes"] = {
        "openwebui_unavailable": {"component": "openwebui", "capabilities": {"chat": "off"}}
    }
    ws.write_config(config)
    token = ws.state / "openwebui" / "token.json"
    token.parent.mkdir(parents=True, mode=0o700)
    expired = expired_copy(admin.token, server.secret_key)
    token.write_text(json.dumps({"token": expired, "expires_at": time.time() + 3600}))
    env = {"OWUI_EMAIL": server.admin_email, "OWUI_PASSWORD": "stale-password"}

    proc = ws.run("recover", "openwebui", env=env, timeout=120)
    assert proc.returncode == ExitCode.UNHEALTHY, proc.stdout + proc.stderr
    step = ws.events("step", "openwebui")[-1]
    assert (step["strategy"], step["outcome"]) == ("token_refresh", "failed")
    assert step["failure_type"] == "token_invalid" and "sign-in refused" in step["detail"], step
    assert json.loads(ws.run("status", "--json", env=env).stdout)[0]["degraded_modes"] == []
    assert not ws.events("degraded_enter", "openwebui")
