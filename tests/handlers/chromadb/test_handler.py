"""The chromadb handler against a real ``chroma run`` server and real on-disk damage.

The seeded persist directory (``conftest.py``) plus a snapshot of it and a copy that keeps
its WAL are built once per module; each test damages its own copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from recovery_cli.handlers.base import ComponentContext, StrategyContext, StrategyResult
from recovery_cli.handlers.chromadb import probe as chromadb_probe
from recovery_cli.handlers.chromadb.handler import ChromaHandler
from recovery_cli.handlers.chromadb.settings import validate as validate_chromadb
from tests.support.chroma_damage import (
    corrupt_sqlite_header,
    corrupt_sqlite_pages,
    deleted_sqlite,
    garbage_pickle,
    missing_segment_dir,
    truncated_data,
    zeroed_header,
)
from tests.support.chroma_server import (
    RECORDS,
    ChromaServer,
    Seeded,
    ServerControl,
    build_persist,
    fixed_query,
    handler_for,
    seed,
)
from tests.support.net import free_port

pytestmark = pytest.mark.slow

NOBODY = 65534
TIMINGS: dict[str, list[float]] = {}


@dataclass(frozen=True)
class Golden:
    purged: Path  # default config: WAL purged after the index flush
    wal: Path  # automatically_purge off: the WAL holds every record
    state: Path  # a state dir holding one snapshot of ``purged``
    query: list[str]
    wal_query: list[str]


@dataclass
class Env:
    server: ChromaServer
    handler: ChromaHandler
    control: ServerControl
    persist: Path

    @property
    def segment(self) -> Path:
        return next(p for p in self.persist.iterdir() if p.is_dir())

    def run(
        self, strategy: str, params: Mapping[str, Any] | None = None, **kw: Any
    ) -> StrategyResult:
        ctx = StrategyContext(
            component=self.handler.context,
            params=params or {},
            failure_type=kw.get("failure_type"),
            timeout=60,
            dry_run=kw.get("dry_run", False),
            service=self.control,
            deadline=time.monotonic() + 60,
        )
        started = time.monotonic()
        result = self.handler.strategies()[strategy](ctx)
        TIMINGS.setdefault(strategy, []).append(time.monotonic() - started)
        return result


def make_handler(server: ChromaServer, state: Path, probe_timeout: float = 20) -> ChromaHandler:
    handler: ChromaHandler = handler_for(server, state, probe_timeout)
    return handler


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory, seeded: Seeded) -> Iterator[Golden]:
    root = tmp_path_factory.mktemp("golden")
    shutil.copytree(seeded.path, root / "purged")
    query = seeded.query
    wal_query = build_persist(root / "wal", keep_wal=True)
    server = ChromaServer(root / "purged", free_port())
    server.start()
    try:
        env = Env(
            server, make_handler(server, root / "state"), ServerControl(server), root / "purged"
        )
        assert env.run("snapshot").ok
    finally:
        server.stop()
    yield Golden(root / "purged", root / "wal", root / "state", query, wal_query)
    if TIMINGS:
        summary = {k: [round(v, 2) for v in vs] for k, vs in TIMINGS.items()}
        sys.stderr.write(f"\nchromadb strategy seconds: {json.dumps(summary)}\n")


def _env(tmp_path: Path, source: Path, state: Path | None) -> Iterator[Env]:
    persist = tmp_path / "persist"
    shutil.copytree(source, persist)
    if state is not None:
        shutil.copytree(state, tmp_path / "state")
    server = ChromaServer(persist, free_port())
    env = Env(server, make_handler(server, tmp_path / "state"), ServerControl(server), persist)
    try:
        yield env
    finally:
        server.stop()


@pytest.fixture
def env(tmp_path: Path, golden: Golden) -> Iterator[Env]:
    yield from _env(tmp_path, golden.purged, golden.state)


@pytest.fixture
def bare_env(tmp_path: Path, golden: Golden) -> Iterator[Env]:
    """Purged WAL and no snapshot at all."""
    yield from _env(tmp_path, golden.purged, None)


@pytest.fixture
def wal_env(tmp_path: Path, golden: Golden) -> Iterator[Env]:
    yield from _env(tmp_path, golden.wal, None)


# -- damage patterns (reference: components.md, ChromaDB 2.3) ------------------------------


def _start(env: Env) -> None:
    # chroma refuses to start on a corrupt sqlite file: that is part of the case
    with contextlib.suppress(TimeoutError):
        env.server.start(timeout=20)


DAMAGE = [
    (missing_segment_dir, "hnsw_missing_silent", "index_rebuild"),
    (zeroed_header, "hnsw_load_error", "index_rebuild"),
    (garbage_pickle, "hnsw_load_error", "index_rebuild"),
    (truncated_data, "hnsw_data_corrupt", "index_rebuild"),
    (corrupt_sqlite_header, "sqlite_corrupt", "snapshot_rollback"),
    (corrupt_sqlite_pages, "sqlite_corrupt", "snapshot_rollback"),
    (deleted_sqlite, "collection_missing", "snapshot_rollback"),
]


@pytest.mark.parametrize(
    ("damage", "failure_type", "strategy"), DAMAGE, ids=[d[0].__name__ for d in DAMAGE]
)
def test_damage_is_classified_and_repaired_to_the_same_results(
    env: Env, golden: Golden, damage: Callable[[Env], None], failure_type: str, strategy: str
) -> None:
    damage(env)
    _start(env)
    probe = env.handler.probe()
    assert (probe.failure_type, probe.healthy) == (failure_type, False), probe.detail

    result = env.run(strategy)

    assert result.ok, result.detail
    after = env.handler.probe()
    assert after.healthy, after.detail
    assert fixed_query(env.server.port, "docs") == golden.query
    quarantined = list(env.persist.parent.glob("persist.quarantine-*"))
    assert len(quarantined) == 1 and any(quarantined[0].iterdir())


def test_healthy_server_probes_healthy_with_counts(env: Env) -> None:
    env.server.start()
    result = env.handler.probe()
    assert result.healthy, result.detail
    assert result.metrics["records"] == RECORDS


def test_one_collection_is_probed_alone_when_the_probe_of_all_died(env: Env) -> None:
    """The fallback after a crashed or hung deep probe: each collection in a probe of its own
    (the handler's settings copied with that one collection)."""
    from recovery_cli.handlers.chromadb.strategies import _probe_alone

    env.server.start()
    alone = _probe_alone(env.handler, "docs", time.monotonic() + 20)
    assert (alone.name, alone.failure_type, alone.count) == ("docs", None, RECORDS)
    assert env.handler.settings.collections == ("docs",)  # the handler's own are untouched


def test_index_rebuild_replays_the_retained_wal_without_a_snapshot(
    wal_env: Env, golden: Golden
) -> None:
    zeroed_header(wal_env)
    wal_env.server.start()
    assert wal_env.handler.probe().failure_type == "hnsw_load_error"

    result = wal_env.run("index_rebuild")

    assert result.ok, result.detail
    assert [p["path"] for p in result.data["plan"]] == ["wal"]
    assert wal_env.handler.probe().healthy
    assert fixed_query(wal_env.server.port, "docs") == golden.wal_query


def test_index_rebuild_refuses_when_no_path_is_left(bare_env: Env) -> None:
    zeroed_header(bare_env)
    bare_env.server.start()
    header = (bare_env.segment / "header.bin").read_bytes()

    result = bare_env.run("index_rebuild")

    assert not result.ok and result.failure_type == "rebuild_impossible"
    assert "WAL purged" in result.detail and "no intact snapshot" in result.detail
    assert (bare_env.segment / "header.bin").read_bytes() == header  # nothing touched
    assert bare_env.control.calls == []


def test_index_rebuild_copies_a_readable_index_into_a_fresh_collection(
    env: Env, golden: Golden
) -> None:
    env.server.start()
    result = env.run("index_rebuild")
    assert result.ok, result.detail
    assert result.data["path"] == "copy"
    copied = result.data["copied"]["docs"]
    assert copied["copied"] == RECORDS and copied["new_id"] != copied["old_id"]
    assert env.handler.probe().healthy
    assert fixed_query(env.server.port, "docs") == golden.query
    assert any(p.name.startswith("docs-pre-rebuild-") for p in _sqlite_collections(env))


def test_collection_reload_reports_a_changed_collection_id(env: Env) -> None:
    env.server.start()
    assert env.handler.probe().healthy  # remembers the ids it saw
    rebuilt = env.run("index_rebuild", {"paths": ["copy"]})
    assert rebuilt.ok, rebuilt.detail
    copied = rebuilt.data["copied"]["docs"]

    reloaded = env.run("collection_reload")

    assert reloaded.ok, reloaded.detail
    assert reloaded.data["changed"] == {"docs": {"from": copied["old_id"], "to": copied["new_id"]}}
    assert "id changed" in reloaded.detail


def test_snapshot_then_rollback_keeps_every_record_and_the_quarantine(
    env: Env, golden: Golden
) -> None:
    env.server.start()
    made = env.run("snapshot", {"keep": 5})
    assert made.ok, made.detail
    manifest = json.loads(
        (env.handler.snapshot_root / made.data["snapshot"] / "MANIFEST.json").read_text()
    )
    assert manifest["collections"]["docs"]["count"] == RECORDS
    assert manifest["chromadb_version"]
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())
    assert (env.handler.snapshot_root / made.data["snapshot"]).stat().st_mode & 0o777 == 0o700
    seed(env.server.port, "later", 10)  # written after the snapshot
    as_root = os.geteuid() == 0
    if as_root:
        os.chown(env.persist, NOBODY, NOBODY)  # as if the server ran as its own user

    rolled = env.run("snapshot_rollback")

    assert rolled.ok, rolled.detail
    assert rolled.data["snapshot"] == made.data["snapshot"]
    assert rolled.data["counts"] == {"docs": RECORDS}
    # the collection written after the snapshot is replayed, not silently dropped
    assert rolled.data["would_lose"]["count"] == 10
    assert rolled.data["replayed"] == {"later": 10} and rolled.data["lost"]["count"] == 0
    assert fixed_query(env.server.port, "later", 10)
    assert fixed_query(env.server.port, "docs") == golden.query
    quarantine = Path(rolled.data["quarantine"])
    assert (quarantine / "chroma.sqlite3").is_file()  # the replaced directory is kept
    if as_root:
        assert (env.persist / "chroma.sqlite3").stat().st_uid == NOBODY  # owner carried over
    assert env.control.calls.count("stop") == 2 and env.control.calls.count("start") == 2


def test_rollback_never_restores_a_snapshot_with_a_wrong_checksum(env: Env, golden: Golden) -> None:
    env.server.start()
    newer = env.run("snapshot")
    assert newer.ok, newer.detail
    segment_file = next(
        (env.handler.snapshot_root / newer.data["snapshot"] / "data").glob("*/header.bin")
    )
    segment_file.write_bytes(b"\1" * segment_file.stat().st_size)

    rolled = env.run("snapshot_rollback")

    assert rolled.ok, rolled.detail
    assert rolled.data["snapshot"] != newer.data["snapshot"]  # the older, intact one
    assert "checksum" in rolled.data["skipped"][0]


def test_rollback_refuses_when_every_snapshot_is_damaged_or_foreign(env: Env) -> None:
    root = env.handler.snapshot_root
    (only,) = list(root.iterdir())
    manifest_path = only / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["chromadb_version"] = "0.4.24"
    manifest_path.write_text(json.dumps(manifest))
    before = _digest(env.persist / "chroma.sqlite3")

    result = env.run("snapshot_rollback")

    assert (result.ok, result.failure_type) == (False, "no_valid_snapshot")
    assert "0.4.24" in result.detail
    assert _digest(env.persist / "chroma.sqlite3") == before
    assert env.control.calls == []


def test_dry_run_rollback_changes_nothing(env: Env) -> None:
    env.server.start()
    before = sorted(p.name for p in env.persist.parent.iterdir())
    result = env.run("snapshot_rollback", dry_run=True)
    assert result.ok and result.detail.startswith("would stop")
    assert sorted(p.name for p in env.persist.parent.iterdir()) == before
    assert env.control.calls == []


def test_killed_server_is_restarted_by_collection_reload(env: Env) -> None:
    env.server.start()
    env.handler.probe()  # remembers the collection ids
    env.server.kill()
    assert env.handler.probe().failure_type == "server_unreachable"

    retried = env.run("query_retry", {"attempts": 2, "initial_delay": 0.1})
    assert (retried.ok, retried.failure_type, retried.data["tries"]) == (
        False,
        "server_unreachable",
        2,
    )

    reloaded = env.run("collection_reload")
    assert reloaded.ok, reloaded.detail
    assert reloaded.data["restarted"] is True and reloaded.data["changed"] == {}
    assert env.control.calls == ["restart"]
    assert env.handler.probe().healthy


def test_query_retry_does_not_retry_a_corruption(env: Env) -> None:
    zeroed_header(env)
    env.server.start()
    started = time.monotonic()
    result = env.run("query_retry", {"attempts": 5, "initial_delay": 2})
    assert (result.failure_type, result.data["tries"]) == ("hnsw_load_error", 1)
    assert time.monotonic() - started < 10


def test_hung_server_is_classified_within_the_probe_timeout(env: Env, tmp_path: Path) -> None:
    env.server.start()
    handler = make_handler(env.server, tmp_path / "state", probe_timeout=3)
    env.server.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = handler.probe()
        elapsed = time.monotonic() - started
    finally:
        env.server.signal(signal.SIGCONT)
    assert result.failure_type == "probe_timeout"
    assert elapsed < 3.5


def test_crashing_child_is_classified_not_fatal(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.server.start()
    crash = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    monkeypatch.setattr(chromadb_probe, "CHILD_ARGV", (sys.executable, "-c", crash))
    result = env.handler.probe()
    assert result.failure_type == "probe_crashed"
    assert "signal 11" in result.detail


def test_offline_check_reads_a_stopped_directory(env: Env) -> None:
    missing_segment_dir(env)
    result = env.handler.probe()  # server not started: offline checks only
    assert result.failure_type == "hnsw_missing_silent"
    assert "server unreachable" in result.detail and "missing" in result.detail


def test_stopped_clean_directory_is_unreachable_and_reports_the_wal(env: Env) -> None:
    result = env.handler.probe()
    assert result.failure_type == "server_unreachable"
    assert "auto-purge on" in result.detail


def test_other_chromadb_version_than_expected_is_degraded(env: Env, tmp_path: Path) -> None:
    env.server.start()
    context = env.handler.context
    settings = {**context.settings, "expected_version": "0.4.24"}
    handler = ChromaHandler(ComponentContext(**{**vars(context), "settings": settings}))
    result = handler.probe()
    assert (result.health.value, result.failure_type) == ("degraded", "version_mismatch")
    assert "0.4.24" in result.detail


def test_validate_config_names_each_bad_key() -> None:
    errors = validate_chromadb(
        {"url": "ftp://x", "collections": ["ab"], "probe_k": 0, "colour": 1},
        {"index_rebuild": {"paths": ["magic"]}, "snapshot": {"keep": 0}},
    )
    keys = sorted(e.key for e in errors)
    assert keys == [
        "settings.collections",
        "settings.colour",
        "settings.probe_k",
        "settings.url",
        "strategies.index_rebuild.params.paths",
        "strategies.snapshot.params.keep",
    ]


def test_embedded_directory_is_probed_without_creating_a_database(
    golden: Golden, tmp_path: Path
) -> None:
    persist = tmp_path / "embedded"
    shutil.copytree(golden.purged, persist)
    context = ComponentContext(
        name="chromadb",
        settings={"persist_directory": str(persist), "collections": ["docs"]},
        strategy_params={},
        state_dir=tmp_path / "state",
        environ={},
        probe_timeout=20,
    )
    handler = ChromaHandler(context)
    healthy = handler.probe()
    assert healthy.healthy and healthy.metrics["records"] == RECORDS, healthy.detail

    (persist / "chroma.sqlite3").unlink()
    missing = handler.probe()

    assert missing.failure_type == "collection_missing"
    assert not (persist / "chroma.sqlite3").exists()  # a client would have made an empty one


def _sqlite_collections(env: Env) -> list[Path]:
    import sqlite3

    db = sqlite3.connect(f"file:{env.persist / 'chroma.sqlite3'}?mode=ro", uri=True)
    try:
        return [Path(row[0]) for row in db.execute("SELECT name FROM collections")]
    finally:
        db.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
