"""Root cause through dependencies, end to end: the host's disk (a real size-limited tmpfs)
is full, and what depends on the host is down because of it. ``status`` names one root,
the dependents' recoveries are blocked by the dependency gate with the root in the audit,
and a real Alertmanager running the shipped config holds the dependents' alerts back."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from tests.support.alertmanager import Alertmanager, running_alertmanager
from tests.support.alertmanager import available as alertmanager_available
from tests.support.cli import Workspace, base_config, command_component
from tests.support.daemons import RELAXED
from tests.support.redis_server import RedisServer, running_redis
from tests.support.tmpfs import mounted_tmpfs

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_ALERTMANAGER = ROOT / "deploy" / "monitoring" / "alertmanager.yml"
# the stand-in's probe: a 4 KiB heartbeat write into its data dir, which fails on a full disk
WRITE_PROBE = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_bytes(b'x' * 4096)"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk") as point:
        yield point


def fill(disk: Path) -> None:
    """Write until the filesystem refuses: the disk is 100% used."""
    with (disk / "fill").open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                out.write(b"\0")
        except OSError:
            pass


def failed_save(server: RedisServer) -> None:
    """BGSAVE into the full disk, and wait until Redis reports the save failed."""
    client: redis.Redis = server.client()
    try:
        client.bgsave()
        deadline = time.monotonic() + 10
        while client.info("persistence")["rdb_last_bgsave_status"] != "err":
            assert time.monotonic() < deadline, "redis never reported the failed save"
            time.sleep(0.05)
    finally:
        client.close()


def config(disk: Path, server: RedisServer, manager: Alertmanager) -> dict[str, Any]:
    """``system`` watches the tmpfs; redis (real, its ``dir`` on the tmpfs) and chromadb (a
    ``command`` stand-in writing into the tmpfs: a real Chroma takes seconds to start and
    adds nothing to what is tested here) depend on it."""
    settings = {**RELAXED, "disk": {"paths": [str(disk)], "max_used_percent": 90}}
    cleanup = {"roots": [str(disk)], "patterns": ["*.tmp"], "min_age_seconds": 3600}
    chroma = command_component(
        [sys.executable, "-c", WRITE_PROBE, str(disk / "chroma" / "heartbeat")],
        {"restart": ["true"]},
        depends_on=["system"],
    )
    data = base_config(
        {
            "system": {
                "kind": "system",
                "settings": settings,
                "chain": ["disk_cleanup"],
                "strategies": {"disk_cleanup": {"params": cleanup}},
            },
            "redis": {
                "kind": "redis",
                "depends_on": ["system"],
                "settings": {"url": server.url},
                "chain": ["reconnect"],
            },
            "chromadb": chroma,
        }
    )
    data["alerting"] = {"alertmanager_url": manager.url}
    return data


def alerts_by_component(manager: Alertmanager, want: dict[str, str]) -> dict[str, Any]:
    """The tool's alerts by component, once their states are ``want`` (or after 10 s)."""
    found: dict[str, Any] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = {a["labels"]["component"]: a for a in manager.alerts()}
        if {name: a["status"]["state"] for name, a in found.items()} == want:
            break
        time.sleep(0.1)
    return found


@pytest.mark.skipif(not alertmanager_available(), reason="prometheus-alertmanager missing")
def test_a_full_host_disk_is_the_one_root_of_what_depends_on_it(
    ws: Workspace, disk: Path, tmp_path: Path
) -> None:
    (disk / "chroma").mkdir()
    (disk / "redis").mkdir()
    with (
        running_redis(tmp_path / "redis", f"dir {disk / 'redis'}") as server,
        running_alertmanager(tmp_path / "am", config_text=SHIPPED_ALERTMANAGER.read_text()) as am,
    ):
        fill(disk)
        failed_save(server)
        ws.write_config(config(disk, server, am))

        recovered = ws.run("recover")
        status = ws.run("status", "--json")
        table = ws.run("status", "--wide")
        alerts = alerts_by_component(
            am, {"system": "active", "redis": "suppressed", "chromadb": "suppressed"}
        )

    assert recovered.returncode in (1, 3), recovered.stdout + recovered.stderr
    rows = {row["component"]: row for row in yaml.safe_load(status.stdout)}
    assert {name: row["health"] for name, row in rows.items()} == {
        "system": "degraded",  # disk_pressure
        "redis": "degraded",  # persistence_failure: the save into the full disk failed
        "chromadb": "degraded",  # its heartbeat write failed (the probe exited 1)
    }, status.stdout
    assert [name for name, row in rows.items() if row["root_of"]] == ["system"]
    assert rows["system"]["root_of"] == ["chromadb", "redis"]
    assert rows["redis"]["root_cause"] == rows["chromadb"]["root_cause"] == ["system"]
    assert "root of chromadb, redis" in table.stdout, table.stdout

    for name in ("redis", "chromadb"):
        [blocked] = ws.events("blocked", name)
        assert blocked["reason"] == "dependency" and blocked["root_cause"] == "system", blocked
        assert not ws.events("attempt", name), "a dependent's chain must not run"
    assert ws.events("attempt", "system"), "the root's own chain runs"
    assert not any("root_cause" in r for r in ws.events("blocked", "system"))

    assert alerts["system"]["labels"]["alertname"] == "RecoveryFailed"  # nothing to clean
    assert alerts["system"]["labels"]["root_cause"] == "system"
    assert "inhibited_by" not in alerts["system"]["labels"]
    for name in ("redis", "chromadb"):
        labels = alerts[name]["labels"]
        assert labels["alertname"] == "RecoveryBlockedWhileDown", labels
        assert labels["inhibited_by"] == "system" and "root_cause" not in labels
        assert alerts[name]["status"]["state"] == "suppressed", alerts[name]
        assert alerts[name]["status"]["inhibitedBy"], "held back by the root's alert"

    checked = subprocess.run(
        ["amtool", "check-config", str(SHIPPED_ALERTMANAGER)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
