"""The drill on the shipped config, with real processes: a service that is not on this host
is skipped with why, a broken precondition of one that is here fails, and an optional secret
is optional. Copies of the shipped config point at private servers (never the standard ports,
which other work on this machine may use) and at units that do not exist."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import yaml

from tests.support.cli import child_env
from tests.support.net import free_port
from tests.support.redis_server import running_redis

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("redis", "chromadb", "openwebui")
SECRETS = ("REDIS_PASSWORD", "OPENWEBUI_API_KEY", "OPENWEBUI_EMAIL", "OPENWEBUI_PASSWORD")
NOT_HERE = "not on this host"


@dataclass(frozen=True)
class Drill:
    code: int
    stdout: str

    @property
    def cases(self) -> list[dict[str, Any]]:
        loaded: list[dict[str, Any]] = json.loads(self.stdout)
        return loaded

    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.cases if not c["ok"] and not c["skipped"]]

    def named(self, component: str, suffix: str) -> list[dict[str, Any]]:
        return [c for c in self.cases if c["component"] == component and c["name"].endswith(suffix)]


def shipped() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "recovery_config.yml").read_text())
    return loaded


def drill(config: dict[str, Any], tmp_path: Path, *args: str, **env: str) -> Drill:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    argv = [sys.executable, "-m", "recovery_cli", "--config", str(path)]
    environ = {k: v for k, v in child_env(env).items() if k not in SECRETS or k in env}
    done = subprocess.run(
        [*argv, "--state-dir", str(tmp_path / "state"), "test", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr
    return Drill(done.returncode, done.stdout)


def nothing_here(tmp_path: Path) -> dict[str, Any]:
    """The shipped config on this host with none of its services: every server on a port
    nothing listens on, units that do not exist, a persist directory that does not."""
    config = shipped()
    components = config["components"]
    components["redis"]["settings"]["url"] = f"redis://127.0.0.1:{free_port()}/0"
    components["chromadb"]["settings"]["url"] = f"http://127.0.0.1:{free_port()}"
    components["chromadb"]["settings"]["persist_directory"] = str(tmp_path / "no-chroma")
    components["openwebui"]["settings"]["url"] = f"http://127.0.0.1:{free_port()}"
    for name in SERVICES:
        components[name]["service"] = {"method": "systemd", "unit": f"absent-{name}-unit"}
    return config


def redis_only(url: str, service: dict[str, Any] | None = None) -> dict[str, Any]:
    config = shipped()
    redis = config["components"]["redis"]
    redis["settings"]["url"] = url
    redis["service"] = service or {"method": "none"}
    redis["depends_on"] = []
    config["components"] = {"redis": redis}
    config.pop("degraded_modes", None)
    return config


# -- (a) nothing of the services here: skipped, with why; the drill passes -----------------


def test_services_not_on_this_host_are_skipped_and_nothing_fails(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    run = drill(nothing_here(tmp_path), tmp_path, "--json", "--junit", str(report))

    assert run.code == 0 and run.failed() == [], run.failed()
    for name in SERVICES:
        mine = [c for c in run.cases if c["component"] == name]
        service = [c for c in mine if c["name"] == "service: service.unit"]
        reachable = [c for c in mine if "reachable" in c["name"]]
        assert service and reachable, mine
        assert all(c["skipped"] and not c["ok"] for c in service + reachable), mine
        assert not [c for c in mine if c["skipped"] and not c["detail"].startswith(NOT_HERE)]
    # the client libraries, the tool's own state dir and the config's values still pass
    assert all(c["ok"] for c in run.named("redis", ": flush_patterns"))
    assert all(c["ok"] for c in run.cases if c["component"] == "system")


def test_junit_marks_each_skip_as_skipped_with_its_reason(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    run = drill(nothing_here(tmp_path), tmp_path, "--json", "--junit", str(report))

    root = ElementTree.parse(report).getroot()
    skips = root.findall(".//testcase/skipped")
    assert len(skips) == sum(c["skipped"] for c in run.cases) > 0
    assert all((s.get("message") or "").startswith(NOT_HERE) for s in skips)
    assert root.findall(".//testcase/failure") == []
    suites = {s.get("name"): s for s in root}
    assert int(suites["redis"].get("skipped") or 0) > 0 and suites["redis"].get("failures") == "0"


def test_the_summary_counts_skips_and_strict_fails_them(tmp_path: Path) -> None:
    plain = drill(nothing_here(tmp_path), tmp_path)
    strict = drill(nothing_here(tmp_path), tmp_path, "--strict", "--json")

    summary = plain.stdout.strip().splitlines()[-1]
    counts = {part.split()[1]: int(part.split()[0]) for part in summary.split(", ")}
    skipped = counts["skipped"]
    assert plain.code == 0 and counts["passed"] > 0 and skipped > 0 and counts["failed"] == 0
    assert " skip " in plain.stdout
    assert strict.code == 1
    assert len(strict.failed()) == skipped and not [c for c in strict.cases if c["skipped"]]


# -- (b) an optional secret: needed only when the server asks for it ------------------------


def test_an_unset_password_passes_when_the_server_asks_for_none(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis") as server:
        run = drill(redis_only(server.url), tmp_path, "--json")
    checks = run.named("redis", ": password")
    assert run.code == 0, run.failed()
    assert checks and all(c["ok"] and "asks for no password" in c["detail"] for c in checks)
    assert not run.named("redis", "credentials: password_env")


def test_an_unset_password_fails_naming_the_variable_when_the_server_asks(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis", "requirepass s3cret-drill-pass") as server:
        run = drill(redis_only(server.url), tmp_path, "--json")
    checks = run.named("redis", ": password")
    assert run.code == 1
    assert checks and all(not c["ok"] and not c["skipped"] for c in checks)
    assert all("$REDIS_PASSWORD is not set and the server asks" in c["detail"] for c in checks)


def test_a_wrong_password_fails_without_showing_it(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis", "requirepass s3cret-drill-pass") as server:
        run = drill(redis_only(server.url), tmp_path, "--json", REDIS_PASSWORD="wr0ng-guess")
    checks = run.named("redis", ": password")
    assert run.code == 1
    assert checks and all("refuses the password in $REDIS_PASSWORD" in c["detail"] for c in checks)
    assert "wr0ng-guess" not in run.stdout and "s3cret-drill-pass" not in run.stdout


# -- (c) a broken precondition fails, here or (for the config's own values) anywhere --------


def test_model_failover_in_the_chain_without_a_fallback_fails(tmp_path: Path) -> None:
    config = nothing_here(tmp_path)
    config["components"]["openwebui"]["chain"].insert(1, "model_failover")
    run = drill(config, tmp_path, "--json")

    (fallback,) = run.named("openwebui", "model_failover: fallback model configured")
    assert run.code == 1 and run.failed() == [fallback]
    assert "fallback_models" in fallback["detail"]
    assert run.named("openwebui", "model_failover: server reachable")[0]["skipped"]


def test_a_persist_directory_that_exists_makes_chroma_here_and_its_problems_fail(
    tmp_path: Path,
) -> None:
    config = nothing_here(tmp_path)
    (tmp_path / "no-chroma").mkdir()  # the directory, without chroma's database in it
    run = drill(config, tmp_path, "--json")

    persist = run.named("chromadb", ": persist directory readable")
    assert run.code == 1 and persist
    assert all(
        not c["ok"] and not c["skipped"] and "chroma.sqlite3" in c["detail"] for c in persist
    )
    assert all(not c["skipped"] for c in run.cases if c["component"] == "chromadb")
    assert all(c["skipped"] for c in run.named("redis", ": reachable"))


def test_a_server_here_without_its_systemd_unit_fails(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis") as server:
        service = {"method": "systemd", "unit": "absent-redis-unit"}
        run = drill(redis_only(server.url, service), tmp_path, "--json")
    (unit,) = run.named("redis", "service: service.unit")
    assert run.code == 1 and run.failed() == [unit], run.failed()
    assert "absent-redis-unit" in unit["detail"]


def test_a_reachable_server_with_a_missing_restart_command_fails(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis") as server:
        service = {"method": "command", "restart": ["/nonexistent/restart"]}
        run = drill(redis_only(server.url, service), tmp_path, "--json")
    assert run.code == 1
    assert [c["name"] for c in run.failed()] == ["service: service.restart"]
    assert not [c for c in run.cases if c["skipped"]]
