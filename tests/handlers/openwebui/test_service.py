"""restart_service against a real ``open-webui serve``: the process is killed, and the
core's own command service (``recovery_cli.service``) starts it again through
``python -m tests.support.openwebui_server start|stop``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recovery_cli.config import ServiceConfig
from recovery_cli.handlers.base import Health
from recovery_cli.handlers.openwebui.handler import OpenWebUIHandler
from recovery_cli.service import CommandService
from tests.handlers.openwebui.helpers import handler_for, run
from tests.support.cli import Workspace
from tests.support.openwebui_server import Admin, OpenWebUIServer

pytestmark = pytest.mark.slow


@pytest.fixture
def handler(server: OpenWebUIServer, admin: Admin, tmp_path: Path) -> OpenWebUIHandler:
    return handler_for(server.url, tmp_path, {"OWUI_API_KEY": admin.api_key}, probe_timeout=5)


def command_service(server: OpenWebUIServer, handler: OpenWebUIHandler) -> CommandService:
    spec = ServiceConfig(
        method="command",
        start=server.command("start"),
        stop=server.command("stop"),
        timeout_seconds=150,
        ready_timeout_seconds=60,
    )
    return CommandService(spec, handler.probe, dict(os.environ))


def test_restart_service_without_a_service_block_says_so(handler: OpenWebUIHandler) -> None:
    result = run(handler, "restart_service")
    assert (result.ok, result.failure_type) == (False, "no_service_control")
    assert "service:" in result.detail


def test_restart_service_dry_run_leaves_the_server_alone(
    server: OpenWebUIServer, handler: OpenWebUIHandler
) -> None:
    pid = server.pid()
    result = run(handler, "restart_service", dry_run=True, service=command_service(server, handler))
    assert result.ok and result.detail.startswith("dry run: would restart via command")
    assert server.pid() == pid


def test_a_killed_server_is_restarted_and_healthy_after(
    server: OpenWebUIServer, handler: OpenWebUIHandler
) -> None:
    killed = server.pid()
    server.kill()
    down = handler.probe()
    assert (down.health, down.failure_type) == (Health.DOWN, "unreachable"), down.detail

    result = run(handler, "restart_service", service=command_service(server, handler), timeout=180)
    assert result.ok, result.detail
    assert "restarted via command" in result.detail
    assert server.pid() not in (None, killed)
    after = handler.probe()
    assert after.healthy, after.detail


def test_cli_restarts_a_killed_server_through_its_service_block(
    server: OpenWebUIServer, admin: Admin, tmp_path: Path
) -> None:
    ws = Workspace(tmp_path)
    settings = {"url": server.url, "api_key_env": "OWUI_API_KEY"}
    service = {
        "method": "command",
        "start": server.command("start"),
        "stop": server.command("stop"),
        "timeout_seconds": 150,
        "ready_timeout_seconds": 60,
    }
    ws.write_config(
        {
            "version": 1,
            "defaults": {"retry": {"attempts": 1, "initial_delay": 0, "jitter": False}},
            "components": {
                "openwebui": {
                    "kind": "openwebui",
                    "settings": settings,
                    "service": service,
                    "step_timeout_seconds": 200,
                    "chain": ["token_refresh", "restart_service"],
                    "strategies": {"restart_service": {"approval": "required"}},
                }
            },
        }
    )
    server.kill()
    proc = ws.run("recover", "openwebui", "--yes", env={"OWUI_API_KEY": admin.api_key}, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # token_refresh cannot help a server that is down: only the restart ran
    steps = [(r["strategy"], r["outcome"]) for r in ws.events("step", "openwebui")]
    assert steps == [("restart_service", "success")]
    assert server.running
