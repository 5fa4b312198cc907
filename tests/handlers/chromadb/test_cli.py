"""The chromadb component end to end through the real ``recovery`` command, with the
server restarted by the core's ``service: {method: command}`` control."""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.chroma_server import ChromaServer, Seeded, component, fixed_query
from tests.support.cli import Workspace, base_config
from tests.support.net import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
ENV = {"PYTHONPATH": str(REPO)}


@pytest.fixture
def server(tmp_path: Path, seeded: Seeded) -> Iterator[ChromaServer]:
    shutil.copytree(seeded.path, tmp_path / "persist")
    chroma = ChromaServer(tmp_path / "persist", free_port(), tmp_path / "chroma.pid")
    chroma.start()
    try:
        yield chroma
    finally:
        chroma.stop()


def chroma_config(ws: Workspace, server: ChromaServer, **strategies: Any) -> None:
    chroma = component(
        server,
        chain=["query_retry", "collection_reload"],
        on_failure={
            "hnsw_load_error": ["index_rebuild", "snapshot_rollback"],
            "sqlite_corrupt": ["snapshot_rollback"],
        },
        strategies={
            "query_retry": {"params": {"attempts": 2, "initial_delay": 0.1}},
            "snapshot_rollback": {"approval": "required"},
            **strategies,
        },
        probe_timeout_seconds=4,
        step_timeout_seconds=90,
    )
    ws.write_config(base_config({"chromadb": chroma}))


def take_snapshot(ws: Workspace) -> None:
    """The cron-able snapshot: one strategy, run even though the component is healthy."""
    snap = ws.run("recover", "chromadb", "--strategy", "snapshot", "--force", env=ENV, timeout=120)
    assert snap.returncode == 0, snap.stdout + snap.stderr


def steps(ws: Workspace) -> list[tuple[str | None, str | None]]:
    return [(r.get("strategy"), r.get("outcome")) for r in ws.events("step", "chromadb")]


def test_killed_server_is_restarted_through_service_control(
    ws: Workspace, server: ChromaServer
) -> None:
    chroma_config(ws, server)
    old_pid = server.pid()
    server.kill()

    result = ws.run("recover", "chromadb", env=ENV, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    assert steps(ws) == [("query_retry", "failed"), ("collection_reload", "success")]
    assert ws.events("attempt", "chromadb")[0]["failure_type"] == "server_unreachable"
    assert server.pid() not in (None, old_pid)


def test_hung_server_does_not_hang_the_cli(ws: Workspace, server: ChromaServer) -> None:
    chroma_config(ws, server)
    server.signal(signal.SIGSTOP)
    started = time.monotonic()
    try:
        result = ws.run("status", "--json", env=ENV, timeout=60)
    finally:
        server.signal(signal.SIGCONT)
    assert time.monotonic() - started < 30
    assert result.returncode in (0, 1), result.stderr
    assert "probe_timeout" in result.stdout


def test_sigstopped_server_is_recovered_by_a_restart(ws: Workspace, server: ChromaServer) -> None:
    chroma_config(ws, server)
    server.signal(signal.SIGSTOP)

    result = ws.run("recover", "chromadb", env=ENV, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    assert ws.events("attempt", "chromadb")[0]["failure_type"] == "probe_timeout"
    assert steps(ws)[-1] == ("collection_reload", "success")


def test_corrupt_index_is_rebuilt_from_a_cli_snapshot(
    ws: Workspace, server: ChromaServer, seeded: Seeded
) -> None:
    chroma_config(ws, server)
    take_snapshot(ws)
    assert len(list((ws.state / "chromadb" / "snapshots").iterdir())) == 1
    server.stop()
    segment = next(p for p in server.path.iterdir() if p.is_dir())
    (segment / "header.bin").write_bytes(b"\0" * 100)
    server.start()

    result = ws.run("recover", "chromadb", env=ENV, timeout=180)

    assert result.returncode == 0, result.stdout + result.stderr
    assert steps(ws)[-1] == ("index_rebuild", "success")
    assert fixed_query(server.port, "docs") == seeded.query


def test_corrupt_sqlite_waits_for_approval_then_rolls_back(
    ws: Workspace, server: ChromaServer, seeded: Seeded
) -> None:
    chroma_config(ws, server)
    take_snapshot(ws)
    server.stop()
    with open(server.path / "chroma.sqlite3", "r+b") as handle:
        handle.write(b"\0" * 100)

    blocked = ws.run("recover", "chromadb", env=ENV, timeout=120)
    assert blocked.returncode == 3, blocked.stdout + blocked.stderr
    pending = json.loads(ws.run("approve", "--json", env=ENV).stdout)
    (approval,) = pending if isinstance(pending, list) else pending["pending"]
    approved = ws.run("approve", approval["id"], "--as", "oncall", env=ENV, timeout=180)

    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert fixed_query(server.port, "docs") == seeded.query
    assert list(server.path.parent.glob("persist.quarantine-*"))


def test_recovery_test_fails_without_a_snapshot_then_passes(
    ws: Workspace, server: ChromaServer
) -> None:
    chroma_config(ws, server)
    before = ws.run("test", env=ENV, timeout=120)
    assert before.returncode == 1, before.stdout + before.stderr
    failed = [line for line in before.stdout.splitlines() if "FAIL" in line]
    assert len(failed) == 1 and "restorable snapshot" in failed[0]

    take_snapshot(ws)
    after = ws.run("test", env=ENV, timeout=120)
    assert after.returncode == 0, after.stdout + after.stderr
