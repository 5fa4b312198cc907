"""A rollback never loses records silently, against a real ``chroma run``.

1,000 records, a snapshot, then 30 more (``late0``..``late29``); then each damage that forces
a rollback. The dry run (the approval's plan) names the 30; after the rollback every record is
back (replayed from the replaced store's WAL) or the step reports exactly what is not.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from recovery_cli.handlers.base import StrategyContext, StrategyResult
from recovery_cli.handlers.chromadb.handler import ChromaHandler
from tests.support.chroma_damage import (
    corrupt_sqlite_header,
    corrupt_sqlite_pages,
    deleted_sqlite,
    zeroed_header,
)
from tests.support.chroma_server import (
    ChromaServer,
    ServerControl,
    add_late,
    all_ids,
    component,
    handler_for,
    seed,
)
from tests.support.cli import Workspace, base_config
from tests.support.net import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
ENV = {"PYTHONPATH": str(REPO)}
BEFORE = 1000
LATE = [f"late{i}" for i in range(30)]


@dataclass(frozen=True)
class Base:
    persist: Path  # 1,030 records: 1,000 in the snapshot, 30 written after it
    state: Path  # holds the snapshot
    ids: list[str]  # every id, sorted


@dataclass
class Env:
    server: ChromaServer
    handler: ChromaHandler
    persist: Path

    @property
    def segment(self) -> Path:
        return next(p for p in self.persist.iterdir() if p.is_dir())

    def run(self, strategy: str, **params: Any) -> StrategyResult:
        dry_run = bool(params.pop("dry_run", False))
        ctx = StrategyContext(
            component=self.handler.context,
            params=params,
            failure_type=None,
            timeout=120,
            dry_run=dry_run,
            service=ServerControl(self.server),
            deadline=time.monotonic() + 120,
        )
        return self.handler.strategies()[strategy](ctx)


def build_base(root: Path, late: int) -> Base:
    """``BEFORE`` records, a snapshot, then ``late`` more (in batches of 500)."""
    server = ChromaServer(root / "persist", free_port())
    server.start()
    try:
        seed(server.port, "docs", BEFORE)
        made = Env(server, handler_for(server, root / "state"), root / "persist").run("snapshot")
        assert made.ok, made.detail
        for start_at in range(0, late, 500):
            add_late(server.port, "docs", min(500, late - start_at), start_at)
        ids = all_ids(server.port, "docs")
    finally:
        server.stop()
    assert len(ids) == BEFORE + late
    return Base(root / "persist", root / "state", ids)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    return build_base(tmp_path_factory.mktemp("loss"), len(LATE))


@pytest.fixture
def env(tmp_path: Path, base: Base) -> Iterator[Env]:
    shutil.copytree(base.persist, tmp_path / "persist")
    shutil.copytree(base.state, tmp_path / "state")
    server = ChromaServer(tmp_path / "persist", free_port())
    try:
        yield Env(server, handler_for(server, tmp_path / "state"), tmp_path / "persist")
    finally:
        server.stop()


def start(env: Env) -> None:
    # chroma refuses to start on a corrupt sqlite file: part of the case
    with contextlib.suppress(TimeoutError):
        env.server.start(timeout=20)


def records_now(env: Env) -> list[str]:
    return all_ids(env.server.port, "docs")


DAMAGE: list[tuple[Callable[[Env], None], str]] = [
    (corrupt_sqlite_header, "sqlite_corrupt"),
    (corrupt_sqlite_pages, "sqlite_corrupt"),
    (zeroed_header, "hnsw_load_error"),
    (deleted_sqlite, "collection_missing"),
]


UNCOUNTABLE = (corrupt_sqlite_pages, deleted_sqlite)


@pytest.mark.parametrize(("damage", "failure_type"), DAMAGE, ids=[d[0].__name__ for d in DAMAGE])
def test_a_rollback_names_what_it_would_discard_and_never_loses_it_silently(
    env: Env, base: Base, damage: Callable[[Env], None], failure_type: str
) -> None:
    damage(env)
    start(env)
    assert env.handler.probe().failure_type == failure_type
    plan = env.run("snapshot_rollback", dry_run=True)
    result = env.run("snapshot_rollback")

    assert plan.ok and result.ok, (plan.detail, result.detail)
    would_lose, lost = plan.data["would_lose"], result.data["lost"]
    assert env.handler.probe().healthy
    now = records_now(env)
    if damage in UNCOUNTABLE:  # the WAL went with the sqlite file, or cannot be read
        assert would_lose["count"] is None and "cannot be counted" in would_lose["summary"]
        assert lost["count"] is None and Path(lost["where"]).is_dir()
        assert len(now) == BEFORE
        return
    assert would_lose["count"] == len(LATE)
    assert would_lose["items"] == sorted(f"docs/{i}" for i in LATE)
    assert "30 replayable from the WAL" in would_lose["summary"]
    assert now == base.ids  # all 1,030, the 30 replayed
    assert lost["count"] == 0 and result.data["replayed"] == {"docs": len(LATE)}


def test_an_index_not_flushed_since_the_snapshot_is_rebuilt_with_every_later_record(
    env: Env, base: Base
) -> None:
    """The snapshot's segment is at the index's own sequence number: restoring it loses
    nothing, Chroma replays the 30 later records from the WAL."""
    zeroed_header(env)
    start(env)

    plan = env.run("index_rebuild", dry_run=True)
    result = env.run("index_rebuild")

    assert result.ok, result.detail
    assert [p["path"] for p in result.data["plan"]] == ["snapshot"]
    assert plan.data["would_lose"]["count"] == 0
    assert env.handler.probe().healthy
    assert records_now(env) == base.ids


def test_replayed_records_keep_their_vectors_documents_and_metadata(env: Env) -> None:
    corrupt_sqlite_header(env)
    start(env)

    result = env.run("snapshot_rollback")

    assert result.ok, result.detail
    got = _get(env, ["late7"])
    assert got["documents"] == ["late document late7"]
    assert got["metadatas"] == [{"late": 7}]
    assert len(got["embeddings"][0]) == 8


def test_without_replay_the_rollback_reports_the_exact_ids_it_lost(env: Env) -> None:
    zeroed_header(env)
    start(env)

    result = env.run("snapshot_rollback", replay=False)

    assert result.ok, result.detail
    lost = result.data["lost"]
    assert lost["count"] == len(LATE)
    assert lost["items"] == sorted(f"docs/{i}" for i in LATE)
    assert (Path(lost["where"]) / "chroma.sqlite3").is_file()
    assert len(records_now(env)) == BEFORE


def _get(env: Env, ids: list[str]) -> dict[str, Any]:
    import subprocess
    import sys

    code = (
        "import chromadb, json, sys\n"
        "from chromadb.config import Settings\n"
        f"c = chromadb.HttpClient(host='127.0.0.1', port={env.server.port},"
        " settings=Settings(anonymized_telemetry=False))\n"
        "col = c.get_collection('docs', embedding_function=None)\n"
        f"r = col.get(ids={ids!r}, include=['embeddings', 'documents', 'metadatas'])\n"
        "print(json.dumps({'documents': r['documents'], 'metadatas': r['metadatas'],"
        " 'embeddings': [list(map(float, e)) for e in r['embeddings']]}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- through the real CLI: the approval shows the plan, the exit code says the outcome ------


@pytest.fixture
def cli_server(ws: Workspace, base: Base) -> Iterator[ChromaServer]:
    shutil.copytree(base.persist, ws.root / "persist")
    shutil.copytree(base.state / "chromadb", ws.state / "chromadb")
    ws.state.chmod(0o700)
    server = ChromaServer(ws.root / "persist", free_port(), ws.root / "chroma.pid")
    chroma = component(
        server,
        chain=["snapshot_rollback"],
        strategies={"snapshot_rollback": {"approval": "required"}},
        probe_timeout_seconds=20,
        step_timeout_seconds=120,
    )
    ws.write_config(base_config({"chromadb": chroma}))
    try:
        yield server
    finally:
        server.stop()


def test_the_cli_approval_names_the_30_and_the_rollback_replays_them(
    ws: Workspace, cli_server: ChromaServer, base: Base
) -> None:
    corrupt_sqlite_header(Env(cli_server, handler_for(cli_server, ws.state), cli_server.path))

    blocked = ws.run("recover", "chromadb", env=ENV, timeout=120)
    listed = json.loads(ws.run("approve", "--json", env=ENV).stdout)

    assert blocked.returncode == 3, blocked.stdout + blocked.stderr
    assert "would lose: 30 records newer than snapshot" in blocked.stdout
    (approval,) = listed
    assert approval["plan"]["would_lose"]["items"] == sorted(f"docs/{i}" for i in LATE)
    approved = ws.run("approve", approval["id"], "--as", "oncall", env=ENV, timeout=240)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert all_ids(cli_server.port, "docs") == base.ids
    assert ws.events("attempt", "chromadb")[-1]["outcome"] == "success"


def test_the_cli_reports_a_rollback_that_could_not_count_its_loss_with_exit_5(
    ws: Workspace, cli_server: ChromaServer
) -> None:
    deleted_sqlite(Env(cli_server, handler_for(cli_server, ws.state), cli_server.path))
    cli_server.start()

    result = ws.run("recover", "chromadb", "--yes", "--as", "oncall", env=ENV, timeout=240)

    assert result.returncode == 5, result.stdout + result.stderr
    assert "recovered_with_loss" in result.stdout
    attempt = ws.events("attempt", "chromadb")[-1]
    assert attempt["outcome"] == "recovered_with_loss"
    assert "cannot be counted" in attempt["detail"]
    step = ws.events("step", "chromadb")[-1]
    assert Path(step["data"]["lost"]["where"]).is_dir()


@pytest.fixture(scope="module")
def flushed(tmp_path_factory: pytest.TempPathFactory) -> Base:
    """1,100 records after the snapshot: enough for Chroma to flush the index past the
    snapshot and purge the WAL behind it (hnsw:sync_threshold 1000)."""
    return build_base(tmp_path_factory.mktemp("flushed"), 1100)


def test_a_rollback_past_a_flushed_index_names_exactly_the_ids_it_could_not_replay(
    tmp_path: Path, flushed: Base
) -> None:
    shutil.copytree(flushed.persist, tmp_path / "persist")
    shutil.copytree(flushed.state, tmp_path / "state")
    server = ChromaServer(tmp_path / "persist", free_port())
    env = Env(server, handler_for(server, tmp_path / "state"), tmp_path / "persist")
    try:
        zeroed_header(env)
        start(env)
        refused = env.run("index_rebuild")
        assert not refused.ok and "flushed after snapshot" in refused.detail

        result = env.run("snapshot_rollback")

        assert result.ok, result.detail
        lost = result.data["lost"]
        now = set(records_now(env))
        missing = sorted(f"docs/{i}" for i in set(flushed.ids) - now)
        assert missing, "the WAL was expected to be purged behind the flush"
        assert lost["count"] == len(missing) and lost["items"] == missing[:100]
        assert (Path(lost["where"]) / "LOST_IDS.txt").read_text().split() == missing
        assert result.data["replayed"]["docs"] == len(flushed.ids) - BEFORE - len(missing)
    finally:
        server.stop()


def test_a_rollback_whose_start_fails_still_reports_what_it_lost(env: Env) -> None:
    """The core's command service, its start command failing: the server stays down."""
    from recovery_cli.config import ServiceConfig
    from recovery_cli.service import build_service

    corrupt_sqlite_header(env)
    spec = ServiceConfig(
        method="command",
        stop=env.server.command("stop"),
        start=["sh", "-c", "echo start refused >&2; exit 1"],
        ready_timeout_seconds=5,
    )
    service = build_service(spec, env.handler.probe, {"PYTHONPATH": str(REPO), **os.environ})
    ctx = StrategyContext(
        component=env.handler.context,
        params={},
        failure_type=None,
        timeout=120,
        service=service,
        deadline=time.monotonic() + 120,
    )

    result = env.handler.strategies()["snapshot_rollback"](ctx)

    assert not result.ok and result.failure_type == "start_failed"
    lost = result.data["lost"]
    assert lost["count"] == len(LATE) and "replay failed" in lost["summary"]
    assert (Path(lost["where"]) / "LOST_IDS.txt").read_text().split() == sorted(
        f"docs/{i}" for i in LATE
    )


def test_a_replay_that_cannot_write_its_file_is_reported_not_retried(env: Env) -> None:
    """An unusable state dir after the swap: the step must not raise (a retried rollback
    would bury the first quarantine, which holds the records)."""
    zeroed_header(env)
    work = env.handler.own_dir / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.write_text("not a directory")

    result = env.run("snapshot_rollback")

    assert result.ok, result.detail
    assert result.data["lost"]["count"] == len(LATE)
    assert "replay failed" in result.data["lost"]["summary"]
    assert len(list(env.persist.parent.glob("persist.quarantine-*"))) == 1


def test_every_collection_counts_whatever_its_name(env: Env) -> None:
    start(env)
    seed(env.server.port, "nightly-rebuild", 20)
    env.server.stop()

    plan = env.run("snapshot_rollback", dry_run=True)
    result = env.run("snapshot_rollback")

    assert plan.data["would_lose"]["count"] == len(LATE) + 20
    assert result.data["replayed"] == {"docs": len(LATE), "nightly-rebuild": 20}
    assert len(all_ids(env.server.port, "nightly-rebuild")) == 20


def test_a_dry_run_of_a_damaged_store_leaves_the_state_dir_as_it_is(env: Env) -> None:
    corrupt_sqlite_header(env)
    before = sorted(p.relative_to(env.handler.own_dir) for p in env.handler.own_dir.rglob("*"))

    plan = env.run("snapshot_rollback", dry_run=True)

    assert plan.data["would_lose"]["count"] == len(LATE)  # read through a salvage copy
    after = sorted(p.relative_to(env.handler.own_dir) for p in env.handler.own_dir.rglob("*"))
    assert after == before


@pytest.mark.parametrize("odd", ["d#x", "d?x", "d%41x"])
def test_a_persist_directory_with_uri_characters_in_its_path_is_read(
    tmp_path: Path, base: Base, odd: str
) -> None:
    from recovery_cli.handlers.chromadb.offline import inspect_directory

    target = tmp_path / odd / "persist"
    shutil.copytree(base.persist, target)

    report = inspect_directory(target, ("docs",))

    assert report.failure_type is None, report.detail
    assert report.collections["docs"].count == BEFORE + len(LATE)
    assert not (tmp_path / "d").exists()
