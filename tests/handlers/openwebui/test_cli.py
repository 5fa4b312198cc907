"""End to end: the real ``recovery`` command against a real ``open-webui serve``.

Upstream outage -> model_failover -> graceful_degradation (degraded mode entered) -> upstream
back -> restore_config puts the config back exactly; an expired token refreshed by
token_refresh; and no secret in any output, log or audit record.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Workspace
from tests.support.model_stub import ModelStub
from tests.support.openwebui_server import (
    Admin,
    OpenWebUIServer,
    expired_copy,
)

pytestmark = pytest.mark.slow

PRIMARY, FALLBACK = "stub-primary", "stub-fallback"


class Session:
    """A workspace plus every output the CLI printed, for the secret scan."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.ws = Workspace(root)
        self.env = env
        self.outputs: list[str] = []

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = self.ws.run(*args, env=self.env, timeout=120)
        self.outputs += [proc.stdout, proc.stderr]
        return proc

    def json(self, *args: str) -> Any:
        proc = self.run(*args)
        return json.loads(proc.stdout)

    def assert_no_secrets(self, secrets: list[str]) -> None:
        """Every output, and every file in the state dir but the token store itself."""
        texts = list(self.outputs)
        for path in self.ws.state.rglob("*"):
            if path.is_file() and path.name != "token.json":
                texts.append(path.read_text(errors="replace"))
        for secret in secrets:
            assert len(secret) > 8
            leaks = [t[:200] for t in texts if secret in t]
            assert not leaks, f"a secret leaked into: {leaks}"


def config(server: OpenWebUIServer, api_key: bool = True) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "url": server.url,
        "email_env": "OWUI_EMAIL",
        "password_env": "OWUI_PASSWORD",
        "chat_smoke_test": True,
    }
    if api_key:
        settings["api_key_env"] = "OWUI_API_KEY"
    return {
        "version": 1,
        "defaults": {
            "cooldown_seconds": 0,
            "max_attempts_per_hour": 50,
            "lock_wait_seconds": 30,
            "retry": {"attempts": 1, "initial_delay": 0, "jitter": False},
        },
        "components": {
            "openwebui": {
                "kind": "openwebui",
                "settings": settings,
                "chain": ["token_refresh", "model_failover", "graceful_degradation"],
                "on_failure": {
                    "token_invalid": ["token_refresh"],
                    "upstream_unavailable": ["model_failover", "graceful_degradation"],
                    "model_missing": ["restore_config", "model_failover"],
                },
                "strategies": {
                    "model_failover": {"params": {"fallback_model": FALLBACK}},
                    "graceful_degradation": {"approval": "required"},
                },
            }
        },
        "degraded_modes": {
            "openwebui_unavailable": {
                "component": "openwebui",
                "capabilities": {"chat": "unavailable"},
            }
        },
    }


def steps(session: Session) -> list[tuple[str, str]]:
    return [(r["strategy"], r["outcome"]) for r in session.ws.events("step", "openwebui")]


def assert_degraded(session: Session, admin: Admin) -> None:
    assert admin.get("/openai/config")["OPENAI_API_CONFIGS"]["0"]["enable"] is False
    assert [b["id"] for b in admin.get("/api/v1/configs/banners")] == ["recovery-cli-openwebui"]
    status = session.json("status", "--json")
    assert status[0]["degraded_modes"] == ["openwebui_unavailable"]


def test_upstream_outage_fails_over_degrades_and_restores_exactly(
    server: OpenWebUIServer, admin: Admin, stub: ModelStub, tmp_path: Path
) -> None:
    session = Session(tmp_path, {"OWUI_API_KEY": admin.api_key})
    session.ws.write_config(config(server))
    before = admin.export()
    assert session.run("recover", "openwebui").returncode == 0

    stub.fail_chat_with(503)
    try:
        outage = session.run("recover", "openwebui", "--yes")
        assert outage.returncode == 1, outage.stdout + outage.stderr
        assert steps(session) == [("model_failover", "failed"), ("graceful_degradation", "success")]
        failover = session.ws.events("step", "openwebui")[0]
        assert failover["failure_type"] == "upstream_unavailable"
        assert failover["data"] == {"previous_default": PRIMARY, "new_default": FALLBACK}
        assert admin.get("/api/v1/configs/models")["DEFAULT_MODELS"] == FALLBACK
        assert_degraded(session, admin)

        # Still failing: restore_config tries, sees chat fail, and puts the degradation back.
        retry = session.run("recover", "openwebui", "--yes")
        assert retry.returncode == 1, retry.stdout + retry.stderr
        assert steps(session)[2] == ("restore_config", "failed")
        assert_degraded(session, admin)
    finally:
        stub.recover()

    restored = session.run("recover", "openwebui")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert steps(session)[-1] == ("restore_config", "success")
    assert admin.export() == before
    assert session.ws.events("degraded_exit", "openwebui")
    assert session.json("status", "--json")[0]["degraded_modes"] == []
    history = session.run("history", "--json")
    assert history.returncode == 0
    session.assert_no_secrets([admin.api_key, server.admin_password])


def test_expired_token_is_refreshed_and_never_printed(
    server: OpenWebUIServer, admin: Admin, tmp_path: Path
) -> None:
    env = {"OWUI_EMAIL": server.admin_email, "OWUI_PASSWORD": server.admin_password}
    session = Session(tmp_path, env)
    session.ws.write_config(config(server, api_key=False))  # the stored token is all it has
    expired = expired_copy(admin.token, server.secret_key)
    token_file = session.ws.state / "openwebui" / "token.json"
    token_file.parent.mkdir(parents=True, mode=0o700)
    token_file.write_text(json.dumps({"token": expired, "expires_at": time.time() + 3600}))

    refreshed = session.run("--verbose", "recover", "openwebui")
    assert refreshed.returncode == 0, refreshed.stdout + refreshed.stderr
    assert steps(session) == [("token_refresh", "success")]
    fresh = json.loads(token_file.read_text())["token"]
    assert fresh != expired
    status = session.json("status", "--json")
    assert status[0]["health"] == "healthy", status
    drill = session.run("test")
    assert drill.returncode == 0, drill.stdout
    session.run("history", "--json")
    session.assert_no_secrets([fresh, expired, server.admin_password, admin.api_key])
