"""The openwebui handler against a real ``open-webui serve`` (0.12.4) and a stub model backend.

One server for the module (start-up ~15 s, ~800 MB). Each test leaves the server's default
models, banners and connections as it found them (the ``clean`` fixture puts them back).
The MFA test switches MFA on for good, so it runs last.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from recovery_cli.handlers.base import Health
from recovery_cli.handlers.openwebui.handler import OpenWebUIHandler
from recovery_cli.handlers.openwebui.settings import validate as validate_openwebui
from tests.handlers.openwebui.helpers import FALLBACK, PRIMARY, handler_for, run
from tests.support.model_stub import ModelStub
from tests.support.net import free_port
from tests.support.openwebui_server import (
    Admin,
    OpenWebUIServer,
    expired_copy,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pristine(admin: Admin) -> dict[str, Any]:
    return admin.export()


@pytest.fixture(autouse=True)
def clean(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "stub" in request.fixturenames:
        request.getfixturevalue("stub").recover()
    if "pristine" in request.fixturenames:
        request.getfixturevalue("admin").put_back(request.getfixturevalue("pristine"))


@pytest.fixture
def with_key(server: OpenWebUIServer, admin: Admin, tmp_path: Path) -> OpenWebUIHandler:
    return handler_for(
        server.url,
        tmp_path,
        {"OWUI_API_KEY": admin.api_key},
        params={"model_failover": {"fallback_model": FALLBACK}},
        required_models=[PRIMARY],
        chat_smoke_test=True,
    )


def sign_in_env(server: OpenWebUIServer) -> dict[str, str]:
    return {"OWUI_EMAIL": server.admin_email, "OWUI_PASSWORD": server.admin_password}


# -- probe -------------------------------------------------------------------------------------


def test_probe_healthy_checks_models_and_chats(
    with_key: OpenWebUIHandler, stub: ModelStub, pristine: Any
) -> None:
    before = len(stub.chat_requests)
    result = with_key.probe()
    assert result.health is Health.HEALTHY, result.detail
    assert result.metrics["models_listed"] == 2
    assert "API key" in result.detail
    assert stub.chat_requests[before:] == [PRIMARY]  # the smoke test used the default model


def test_probe_unreachable_is_quick(tmp_path: Path) -> None:
    handler = handler_for(f"http://127.0.0.1:{free_port()}", tmp_path, {}, probe_timeout=3)
    started = time.monotonic()
    result = handler.probe()
    assert (result.health, result.failure_type) == (Health.DOWN, "unreachable")
    assert time.monotonic() - started < 3


class _StartingUp(BaseHTTPRequestHandler):
    """Answers like OpenWebUI's /ready while start-up or its database is not ready (a state
    that cannot be held still on a real server long enough to probe it)."""

    ready_detail = "Startup not complete"

    def do_GET(self) -> None:
        ok = self.path in ("/health", "/health/db")
        body = b'{"status":true}' if ok else f'{{"detail":"{self.ready_detail}"}}'.encode()
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.mark.parametrize(
    ("ready_detail", "failure_type"),
    [("Startup not complete", "not_ready"), ("Database not ready", "db_unhealthy")],
)
def test_probe_reads_the_ready_reason(ready_detail: str, failure_type: str, tmp_path: Path) -> None:
    handler_class = type("Handler", (_StartingUp,), {"ready_detail": ready_detail})
    with ThreadingHTTPServer(("127.0.0.1", 0), handler_class) as fake:
        thread = threading.Thread(target=fake.serve_forever, daemon=True)
        thread.start()
        try:
            result = handler_for(f"http://127.0.0.1:{fake.server_address[1]}", tmp_path, {}).probe()
        finally:
            fake.shutdown()
            thread.join(5)
    assert (result.health, result.failure_type) == (Health.DOWN, failure_type)
    assert ready_detail in result.detail


def test_probe_rejects_expired_and_forged_credentials(
    server: OpenWebUIServer, admin: Admin, tmp_path: Path
) -> None:
    expired = expired_copy(admin.token, server.secret_key)
    for credential in (expired, "sk-not-a-real-key", admin.token[:-4] + "abcd"):
        result = handler_for(server.url, tmp_path, {"OWUI_API_KEY": credential}).probe()
        assert (result.health, result.failure_type) == (Health.DEGRADED, "token_invalid"), (
            result.detail
        )
        assert credential not in result.detail


def test_probe_without_any_credential_says_how_to_get_one(
    server: OpenWebUIServer, tmp_path: Path
) -> None:
    result = handler_for(server.url, tmp_path, {}).probe()
    assert result.failure_type == "token_invalid"
    assert "token_refresh" in result.detail


def test_probe_forbidden_for_a_non_admin(
    server: OpenWebUIServer, admin: Admin, tmp_path: Path
) -> None:
    admin.add_user("viewer@example.com", "viewer-pass-1")
    token = admin.sign_in("viewer@example.com", "viewer-pass-1")
    result = handler_for(server.url, tmp_path, {"OWUI_API_KEY": token}).probe()
    assert result.failure_type == "forbidden", result.detail


def test_probe_model_missing(server: OpenWebUIServer, admin: Admin, tmp_path: Path) -> None:
    handler = handler_for(
        server.url, tmp_path, {"OWUI_API_KEY": admin.api_key}, required_models=["gone-model"]
    )
    result = handler.probe()
    assert (result.health, result.failure_type) == (Health.DEGRADED, "model_missing")
    assert "gone-model" in result.detail


def test_probe_upstream_down_is_upstream_unavailable(
    with_key: OpenWebUIHandler, stub: ModelStub, pristine: Any
) -> None:
    stub.fail_with(503)
    result = with_key.probe()
    assert result.failure_type == "upstream_unavailable", result.detail
    assert "connection 0" in result.detail


def test_probe_chat_503_with_models_listed_is_upstream_unavailable(
    with_key: OpenWebUIHandler, stub: ModelStub, pristine: Any
) -> None:
    stub.fail_chat_with(503)
    result = with_key.probe()
    assert result.failure_type == "upstream_unavailable", result.detail
    assert "503" in result.detail


# -- token_refresh -----------------------------------------------------------------------------


def test_token_refresh_stores_a_private_token_the_probe_then_uses(
    server: OpenWebUIServer, tmp_path: Path
) -> None:
    handler = handler_for(server.url, tmp_path, sign_in_env(server))
    assert handler.probe().failure_type == "token_invalid"
    result = run(handler, "token_refresh")
    assert result.ok, result.detail
    stored = handler.files.load_token()
    assert stored is not None and stored.expires_at is not None and stored.expires_at > time.time()
    assert stored.token not in result.detail + repr(result.data)
    assert stat.S_IMODE(os.stat(handler.files.token_path()).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(handler.files.dir).st_mode) == 0o700
    after = handler.probe()
    assert after.healthy and "stored token" in after.detail, after.detail


def test_expired_stored_token_is_refreshed(
    server: OpenWebUIServer, admin: Admin, tmp_path: Path
) -> None:
    handler = handler_for(server.url, tmp_path, sign_in_env(server))
    # The file claims the token is still good; only the server knows it expired.
    handler.files.save_token(expired_copy(admin.token, server.secret_key), time.time() + 3600)
    probe = handler.probe()
    assert probe.failure_type == "token_invalid", probe.detail
    assert run(handler, "token_refresh").ok
    assert handler.probe().healthy


def test_token_refresh_wrong_password(server: OpenWebUIServer, tmp_path: Path) -> None:
    environ = {**sign_in_env(server), "OWUI_PASSWORD": "definitely-wrong"}
    result = run(handler_for(server.url, tmp_path, environ), "token_refresh")
    assert (result.ok, result.failure_type, result.retryable) == (
        False,
        "auth_invalid_credentials",
        False,
    )
    assert "definitely-wrong" not in result.detail


def test_token_refresh_keeps_its_own_budget(server: OpenWebUIServer, tmp_path: Path) -> None:
    params = {"token_refresh": {"max_signins_per_window": 1}}
    handler = handler_for(server.url, tmp_path, sign_in_env(server), params=params)
    assert run(handler, "token_refresh").ok
    second = run(handler, "token_refresh")
    assert (second.ok, second.failure_type) == (False, "auth_rate_limited")
    assert "cap 1" in second.detail


def test_token_refresh_rate_limited_by_the_server(
    server: OpenWebUIServer, admin: Admin, tmp_path: Path
) -> None:
    admin.add_user("busy@example.com", "busy-pass-1")
    for _ in range(15):  # the server's limit: 15 sign-ins per email in 3 minutes
        admin.client.post(
            "/api/v1/auths/signin", json={"email": "busy@example.com", "password": "nope"}
        )
    environ = {"OWUI_EMAIL": "busy@example.com", "OWUI_PASSWORD": "busy-pass-1"}
    handler = handler_for(server.url, tmp_path, environ)
    result = run(handler, "token_refresh")
    assert (result.ok, result.failure_type) == (False, "auth_rate_limited"), result.detail
    again = run(handler, "token_refresh")  # refused locally: no request adds to the block
    assert again.failure_type == "auth_rate_limited" and "not retrying" in again.detail


def test_token_refresh_against_a_dead_server_is_retryable_and_costs_no_budget(
    tmp_path: Path,
) -> None:
    environ = {"OWUI_EMAIL": "a@example.com", "OWUI_PASSWORD": "some-password"}
    handler = handler_for(f"http://127.0.0.1:{free_port()}", tmp_path, environ)
    result = run(handler, "token_refresh")
    assert (result.ok, result.failure_type, result.retryable) == (False, "unreachable", True)
    assert handler.files.signins() == {}


def test_token_refresh_dry_run_signs_nothing(server: OpenWebUIServer, tmp_path: Path) -> None:
    handler = handler_for(server.url, tmp_path, sign_in_env(server))
    result = run(handler, "token_refresh", dry_run=True)
    assert result.ok and "would sign in" in result.detail
    assert handler.files.load_token() is None and handler.files.signins() == {}


# -- model_failover, graceful_degradation, restore_config --------------------------------------


def test_failover_switches_default_and_restore_puts_it_back(
    with_key: OpenWebUIHandler, admin: Admin, stub: ModelStub, pristine: dict[str, Any]
) -> None:
    result = run(with_key, "model_failover")
    assert result.ok, result.detail
    assert result.data == {"previous_default": PRIMARY, "new_default": FALLBACK}
    assert admin.get("/api/v1/configs/models")["DEFAULT_MODELS"] == FALLBACK
    assert stub.chat_requests[-1] == FALLBACK  # verified with a real chat
    restored = run(with_key, "restore_config")
    assert restored.ok and restored.data["exit_degraded"] is True, restored.detail
    assert admin.export() == pristine
    assert with_key.files.load_baseline() is None


def test_failover_without_a_listed_fallback_fails(
    with_key: OpenWebUIHandler, admin: Admin, pristine: Any
) -> None:
    handler = handler_for(
        with_key.context.settings["url"],
        with_key.context.state_dir,
        with_key.context.environ,
        params={"model_failover": {"fallback_models": ["not-served"]}},
    )
    result = run(handler, "model_failover")
    assert (result.ok, result.failure_type) == (False, "model_missing")
    assert admin.export() == pristine


def test_degrade_then_restore_round_trip(
    with_key: OpenWebUIHandler, admin: Admin, stub: ModelStub, pristine: dict[str, Any]
) -> None:
    stub.fail_chat_with(503)
    result = run(with_key, "graceful_degradation")
    assert result.ok and result.data["enter_degraded"] is True, result.detail
    assert result.data["disabled_connections"] == [0]
    assert [b["id"] for b in admin.get("/api/v1/configs/banners")] == ["recovery-cli-openwebui"]
    assert admin.get("/openai/config")["OPENAI_API_CONFIGS"]["0"]["enable"] is False
    assert "graceful_degradation is in effect" in with_key.probe().detail

    stub.fail_with(503)  # still down: restore refuses and changes nothing
    degraded = admin.export()
    refused = run(with_key, "restore_config")
    assert (refused.ok, refused.failure_type) == (False, "upstream_unavailable")
    assert admin.export() == degraded

    stub.recover()
    stub.fail_chat_with(503)  # models list again, chat does not: restore, verify, degrade again
    again = run(with_key, "restore_config")
    assert (again.ok, again.failure_type) == (False, "upstream_unavailable"), again.detail
    assert "degradation put back" in again.detail
    assert admin.get("/openai/config")["OPENAI_API_CONFIGS"]["0"]["enable"] is False
    assert [b["id"] for b in admin.get("/api/v1/configs/banners")] == ["recovery-cli-openwebui"]

    stub.recover()
    restored = run(with_key, "restore_config")
    assert restored.ok, restored.detail
    assert admin.export() == pristine
    assert with_key.probe().healthy


def test_strategies_dry_run_change_nothing(
    with_key: OpenWebUIHandler, admin: Admin, stub: ModelStub, pristine: dict[str, Any]
) -> None:
    stub.fail_chat_with(503)
    for strategy in ("model_failover", "graceful_degradation"):
        result = run(with_key, strategy, dry_run=True)
        assert result.ok and result.detail.startswith("dry run"), result.detail
    assert "disable connection(s) 0" in result.detail
    assert admin.export() == pristine
    assert with_key.files.load_baseline() is None


def test_restore_without_baseline_has_nothing_to_do(with_key: OpenWebUIHandler) -> None:
    result = run(with_key, "restore_config")
    assert (result.ok, result.failure_type) == (False, "nothing_to_restore")


# -- config and preflight ----------------------------------------------------------------------


def test_validate_config_names_each_bad_key() -> None:
    errors = validate_openwebui(
        {"url": "127.0.0.1:8080", "required_models": "llama", "chat_smoke_test": "yes"},
        {
            "graceful_degradation": {"banner_type": "loud"},
            "token_refresh": {"max_signins_per_window": 50},
            "model_failover": {"fallback_model": 3},
        },
    )
    assert sorted(e.key for e in errors) == [
        "settings.chat_smoke_test",
        "settings.required_models",
        "settings.url",
        "strategies.graceful_degradation.params.banner_type",
        "strategies.model_failover.params.fallback_model",
        "strategies.token_refresh.params.max_signins_per_window",
    ]
    assert validate_openwebui({"url": "http://127.0.0.1:1"}, {}) == []


def test_preflight_reports_missing_credentials(
    server: OpenWebUIServer, admin: Admin, tmp_path: Path
) -> None:
    handler = handler_for(server.url, tmp_path, {"OWUI_API_KEY": admin.api_key})
    checks = {c.name: c for c in handler.preflight("token_refresh")}
    assert (
        not checks["sign-in email set"].ok and "$OWUI_EMAIL" in checks["sign-in email set"].detail
    )
    assert checks["server reachable"].ok and checks["state dir writable"].ok
    admin_checks = {c.name: c for c in handler.preflight("graceful_degradation")}
    assert admin_checks["admin credential works"].ok
    assert not (tmp_path / "openwebui").exists()  # preflight created nothing


# -- MFA: last, because switching MFA on revokes every session for good -----------------------


def test_mfa_and_pending_accounts_stop_without_looping(
    server: OpenWebUIServer, admin: Admin, tmp_path: Path
) -> None:
    admin.add_user("waiting@example.com", "waiting-pass-1", role="pending")
    config = admin.get("/api/v1/auths/admin/config")
    human = admin.sign_in(server.admin_email, server.admin_password)
    admin.post("/api/v1/auths/admin/config", {**config, "ENABLE_MFA": True}, credential=human)

    mfa = run(handler_for(server.url, tmp_path / "a", sign_in_env(server)), "token_refresh")
    assert (mfa.ok, mfa.failure_type, mfa.retryable) == (False, "auth_mfa_required", False), (
        mfa.detail
    )
    environ = {"OWUI_EMAIL": "waiting@example.com", "OWUI_PASSWORD": "waiting-pass-1"}
    pending = run(handler_for(server.url, tmp_path / "b", environ), "token_refresh")
    assert (pending.ok, pending.failure_type, pending.retryable) == (False, "auth_pending", False)
