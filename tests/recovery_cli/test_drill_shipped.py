"""The drill on the shipped config: a service that is not on this host is skipped with why,
a broken precondition of one that is fails, and an optional secret is optional."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml

from tests.support.cli import child_env
from tests.support.net import free_port
from tests.support.redis_server import running_redis

ROOT = Path(__file__).resolve().parents[2]
RECOVERY = (sys.executable, "-m", "recovery_cli")


def shipped() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "recovery_config.yml").read_text())
    return loaded


def drill(config: dict[str, Any], tmp_path: Path, *args: str) -> tuple[int, list[dict[str, Any]]]:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [
            *RECOVERY,
            "--config",
            str(path),
            "--state-dir",
            str(tmp_path / "state"),
            "test",
            "--json",
            *args,
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
    )
    return done.returncode, json.loads(done.stdout)


def away_from_standard_ports(config: dict[str, Any]) -> dict[str, Any]:
    """The shipped config with every server on a port nothing listens on (never 6379,
    8000, 8080, which other work on this machine may use) and no systemd unit to find."""
    components = config["components"]
    components["redis"]["settings"]["url"] = f"redis://127.0.0.1:{free_port()}/0"
    components["chromadb"]["settings"]["url"] = f"http://127.0.0.1:{free_port()}"
    components["openwebui"]["settings"]["url"] = f"http://127.0.0.1:{free_port()}"
    for name in ("redis", "chromadb", "openwebui"):
        components[name]["service"] = {"method": "systemd", "unit": f"absent-{name}-unit"}
    return config


def no_systemd_here() -> bool:
    done = subprocess.run(["systemctl", "is-system-running"], capture_output=True, text=True)
    return (
        shutil.which("systemctl") is None
        or "offline" in done.stdout + done.stderr
        or ("not been booted" in done.stderr)
    )


@pytest.mark.skipif(not no_systemd_here(), reason="needs a host where these units do not exist")
def test_services_not_on_this_host_are_skipped_and_nothing_fails(tmp_path: Path) -> None:
    code, cases = drill(
        away_from_standard_ports(shipped()), tmp_path, "--junit", str(tmp_path / "r.xml")
    )
    assert code == 0, [c for c in cases if not c["ok"] and not c["skipped"]]
    assert not [c for c in cases if not c["ok"] and not c["skipped"]]
    skipped = [c for c in cases if c["skipped"]]
    assert {c["component"] for c in skipped} == {"redis", "chromadb", "openwebui"}
    assert all(c["detail"].startswith("not on this host") for c in skipped)
    junit = ElementTree.parse(tmp_path / "r.xml").getroot()
    assert len(junit.findall(".//testcase/skipped")) == len(skipped)
    assert junit.findall(".//testcase/failure") == []


def redis_only(url: str) -> dict[str, Any]:
    config = shipped()
    redis = config["components"]["redis"]
    redis["settings"]["url"] = url
    redis["service"] = {"method": "none"}
    redis["depends_on"] = []
    config["components"] = {"redis": redis}
    config.pop("degraded_modes", None)
    return config


def password_cases(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in cases if c["name"].endswith(": password")]


def test_an_unset_password_passes_when_the_server_asks_for_none(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis") as server:
        _code, cases = drill(redis_only(server.url), tmp_path)
    checks = password_cases(cases)
    assert checks and all(c["ok"] for c in checks), checks
    assert all("asks for no password" in c["detail"] for c in checks)
    assert not [c for c in cases if c["name"] == "credentials: password_env"]


def test_an_unset_password_fails_naming_the_variable_when_the_server_asks(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis", "requirepass s3cret-drill-pass") as server:
        code, cases = drill(redis_only(server.url), tmp_path)
    assert code == 1
    checks = password_cases(cases)
    assert checks and not any(c["ok"] or c["skipped"] for c in checks)
    assert all(
        "$REDIS_PASSWORD" in c["detail"] and "asks for a password" in c["detail"] for c in checks
    )


def test_a_reachable_server_with_a_broken_service_control_fails(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis") as server:
        config = redis_only(server.url)
        config["components"]["redis"]["service"] = {
            "method": "command",
            "restart": ["/nonexistent/restart"],
        }
        code, cases = drill(config, tmp_path)
    assert code == 1
    assert not [c for c in cases if c["skipped"]]
