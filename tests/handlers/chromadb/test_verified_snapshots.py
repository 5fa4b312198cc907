"""Damage to the HNSW graph that no Chroma call reports, against a real ``chroma run``:
the deep probe's self-recall sample and graph check find it, ``index_rebuild`` repairs it,
and ``snapshot`` never publishes it, so rotation cannot push the last good snapshot out.
"""

from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from recovery_cli.handlers.chromadb.probe import GRAPH_HEADER, hnsw_graph_problems
from recovery_cli.handlers.chromadb.snapshot import (
    MANIFEST_NAME,
    chromadb_version,
    file_digests,
    prune,
    published,
    select_snapshot,
)
from tests.handlers.chromadb.test_handler import Env, _env, make_handler
from tests.support.chroma_server import (
    RECORDS,
    ChromaServer,
    Seeded,
    ServerControl,
    build_persist,
    fixed_query,
)
from tests.support.net import free_port

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Store:
    purged: Path  # WAL purged (the default): repairs need a snapshot
    wal: Path  # automatically_purge off: the WAL holds every record
    state: Path  # a state dir holding one verified snapshot of ``purged``
    query: list[str]
    wal_query: list[str]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, seeded: Seeded) -> Store:
    root = tmp_path_factory.mktemp("verified")
    shutil.copytree(seeded.path, root / "purged")
    wal_query = build_persist(root / "wal", keep_wal=True)
    server = ChromaServer(root / "purged", free_port())
    server.start()
    try:
        env = Env(
            server, make_handler(server, root / "state"), ServerControl(server), root / "purged"
        )
        made = env.run("snapshot")
        assert made.ok and made.data["verified"] is True, made.detail
    finally:
        server.stop()
    return Store(root / "purged", root / "wal", root / "state", seeded.query, wal_query)


@pytest.fixture
def env(tmp_path: Path, store: Store) -> Iterator[Env]:
    yield from _env(tmp_path, store.purged, store.state)


@pytest.fixture
def wal_env(tmp_path: Path, store: Store) -> Iterator[Env]:
    yield from _env(tmp_path, store.wal, None)


# -- damage ------------------------------------------------------------------------------


def scattered_bytes(path: Path, seed: int = 1) -> None:
    """200 random bytes, each at its own random offset."""
    rng = random.Random(seed)
    with open(path, "r+b") as handle:
        for _ in range(200):
            handle.seek(rng.randrange(path.stat().st_size))
            handle.write(bytes([rng.randrange(256)]))


def one_block(path: Path, seed: int = 1) -> None:
    """200 random bytes at one random offset."""
    rng = random.Random(seed)
    with open(path, "r+b") as handle:
        handle.seek(rng.randrange(path.stat().st_size - 200))
        handle.write(rng.randbytes(200))


def scrambled_bottom_layer(segment: Path) -> None:
    """Every record's bottom-layer neighbour list swapped with another's: every id stays
    valid, so no file check sees it, but searches get lost."""
    fields = GRAPH_HEADER.unpack((segment / "header.bin").read_bytes())
    count, per_element, links = fields[3], fields[4], fields[10] * 4 + 4
    data = bytearray((segment / "data_level0.bin").read_bytes())
    lists = [bytes(data[i * per_element : i * per_element + links]) for i in range(count)]
    random.Random(1).shuffle(lists)
    for i, block in enumerate(lists):
        data[i * per_element : i * per_element + links] = block
    (segment / "data_level0.bin").write_bytes(bytes(data))


DAMAGE: list[Callable[[Path], None]] = [scattered_bytes, one_block]


def _manifest(path: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((path / MANIFEST_NAME).read_text())
    return loaded


# -- detection -----------------------------------------------------------------------------


@pytest.mark.parametrize("damage", DAMAGE, ids=[d.__name__ for d in DAMAGE])
def test_the_graph_check_finds_200_random_bytes_in_link_lists_every_time(
    store: Store, tmp_path: Path, damage: Callable[[Path, int], None]
) -> None:
    segment = tmp_path / "segment"
    shutil.copytree(next(p for p in store.purged.iterdir() if p.is_dir()), segment)
    original = (segment / "link_lists.bin").read_bytes()
    assert hnsw_graph_problems(segment) == []
    missed = []
    for seed in range(300):
        (segment / "link_lists.bin").write_bytes(original)
        damage(segment / "link_lists.bin", seed)
        if not hnsw_graph_problems(segment):
            missed.append(seed)
    assert missed == []


def test_a_healthy_store_probes_healthy_with_its_graph_checked(env: Env) -> None:
    env.server.start()
    result = env.handler.probe()
    assert result.healthy, result.detail
    assert result.metrics["records"] == RECORDS
    assert result.metrics["recall_sampled"] == 20
    assert result.metrics["graph_checked"] == 1


WRITES = """
import chromadb, random, sys
from chromadb.config import Settings
from tests.support.chroma_server import vectors
client = chromadb.HttpClient(host="127.0.0.1", port=int(sys.argv[1]),
                             settings=Settings(anonymized_telemetry=False))
docs = client.get_collection("docs", embedding_function=None)
rng = random.Random(3)
order = rng.sample(range(2000), 600)  # the first 300 deleted, the other 300 given new vectors
docs.delete(ids=[f"id{i}" for i in order[:300]])
docs.upsert(ids=[f"id{i}" for i in order[300:]], embeddings=vectors(300, seed=11))
later = vectors(1500, seed=12)
for start in range(0, 1500, 500):
    docs.add(ids=[f"new{i}" for i in range(start, start + 500)], embeddings=later[start:start + 500])
"""


def test_a_store_after_deletes_updates_and_index_flushes_probes_healthy(env: Env) -> None:
    """The graph check and self-recall must not mistake a live index for a damaged one:
    deletions, replaced vectors and two index flushes, probed while the server runs and
    again after a restart."""
    env.server.start()
    code = textwrap.dedent(WRITES)
    subprocess.run([sys.executable, "-c", code, str(env.server.port)], check=True, timeout=120)

    running = env.handler.probe()
    env.server.stop()
    env.server.start()
    restarted = env.handler.probe()

    for result in (running, restarted):
        assert result.healthy, result.detail
        assert result.metrics["records"] == RECORDS - 300 + 1500
        assert result.metrics["graph_checked"] == 1 and result.metrics["recall_sampled"] == 20


def test_a_scrambled_bottom_layer_is_caught_by_self_recall(env: Env) -> None:
    scrambled_bottom_layer(env.segment)
    assert hnsw_graph_problems(env.segment) == []  # the file check cannot see this one
    env.server.start()

    result = env.handler.probe()

    assert (result.healthy, result.failure_type) == (False, "hnsw_graph_corrupt")
    assert "self-recall" in result.detail and "not found by their own vector" in result.detail


# -- repair ----------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", DAMAGE, ids=[d.__name__ for d in DAMAGE])
def test_random_bytes_in_link_lists_are_detected_and_rebuilt_from_the_snapshot(
    env: Env, store: Store, damage: Callable[[Path], None]
) -> None:
    damage(env.segment / "link_lists.bin")
    env.server.start()
    assert fixed_query(env.server.port, "docs") == store.query  # queries do not show it
    probe = env.handler.probe()
    assert (probe.healthy, probe.failure_type) == (False, "hnsw_graph_corrupt"), probe.detail
    assert "link_lists.bin" in probe.detail

    result = env.run("index_rebuild", failure_type="hnsw_graph_corrupt")

    assert result.ok, result.detail
    assert [p["path"] for p in result.data["plan"]] == ["snapshot"]
    after = env.handler.probe()
    assert after.healthy, after.detail
    assert fixed_query(env.server.port, "docs") == store.query
    (quarantine,) = env.persist.parent.glob("persist.quarantine-*")
    assert hnsw_graph_problems(next(quarantine.iterdir()))  # the damaged graph is kept


def test_graph_damage_is_rebuilt_from_a_retained_wal(wal_env: Env, store: Store) -> None:
    scattered_bytes(wal_env.segment / "link_lists.bin")
    wal_env.server.start()
    assert wal_env.handler.probe().failure_type == "hnsw_graph_corrupt"

    result = wal_env.run("index_rebuild", failure_type="hnsw_graph_corrupt")

    assert result.ok, result.detail
    assert [p["path"] for p in result.data["plan"]] == ["wal"]
    assert wal_env.handler.probe().healthy
    assert fixed_query(wal_env.server.port, "docs") == store.wal_query


# -- verified snapshots ------------------------------------------------------------------------


def test_a_snapshot_records_that_it_was_verified(env: Env) -> None:
    env.server.start()
    made = env.run("snapshot")
    assert made.ok and made.data["verified"] is True, made.detail
    verified = _manifest(env.handler.snapshot_root / made.data["snapshot"])["verified"]
    assert isinstance(verified, dict)
    assert verified["ok"] is True and verified["at"]
    assert verified["self_recall"] == {"sampled": 20, "ok": True}
    assert verified["graph"] == {"segments": 1, "ok": True}


def test_a_snapshot_of_a_damaged_index_is_refused(env: Env) -> None:
    scattered_bytes(env.segment / "link_lists.bin")
    env.server.start()
    before = [p.name for p in published(env.handler.snapshot_root)]

    result = env.run("snapshot")

    assert (result.ok, result.failure_type) == (False, "snapshot_refused")
    assert "hnsw_graph_corrupt" in result.detail
    assert env.control.calls == []  # refused before the server was stopped
    assert [p.name for p in published(env.handler.snapshot_root)] == before


def test_without_require_healthy_the_copy_is_checked_and_refused(env: Env) -> None:
    one_block(env.segment / "link_lists.bin")
    env.server.start()
    root = env.handler.snapshot_root
    before = sorted(p.name for p in root.iterdir())

    result = env.run("snapshot", {"require_healthy": False})

    assert (result.ok, result.failure_type) == (False, "snapshot_refused")
    assert "index graph damaged in the copy" in result.detail
    assert sorted(p.name for p in root.iterdir()) == before  # no snapshot, no .partial left
    assert env.control.calls == ["stop", "start"]
    assert env.server.pid() is not None


def test_three_damaged_attempts_with_keep_2_leave_the_verified_snapshot_to_roll_back_to(
    env: Env, store: Store
) -> None:
    root = env.handler.snapshot_root
    (good,) = published(root)
    scattered_bytes(env.segment / "link_lists.bin")
    env.server.start()

    attempts = [
        env.run("snapshot", {"keep": 2, "require_healthy": require})
        for require in (True, False, False)
    ]

    assert [(a.ok, a.failure_type) for a in attempts] == [(False, "snapshot_refused")] * 3
    assert published(root) == [good]
    rolled = env.run("snapshot_rollback")
    assert rolled.ok and rolled.data["snapshot"] == good.name, rolled.detail
    assert env.handler.probe().healthy
    assert fixed_query(env.server.port, "docs") == store.query


@pytest.fixture
def pinned_env(tmp_path: Path, store: Store) -> Iterator[Env]:
    """Expects another chromadb version: the probe is degraded, never healthy."""
    for env in _env(tmp_path, store.purged, store.state):
        update = {"expected_version": "0.4.24"}
        env.handler.settings = env.handler.settings.model_copy(update=update)
        yield env


def test_unverified_snapshots_rotate_but_the_newest_verified_one_stays(pinned_env: Env) -> None:
    """A store that probes unhealthy for another reason (version_mismatch), its graph
    intact: ``require_healthy: false`` publishes unverified snapshots, and three of them
    with ``keep: 2`` still leave the verified one."""
    env = pinned_env
    root = env.handler.snapshot_root
    (good,) = published(root)
    env.server.start()
    names = []
    for _ in range(3):
        made = env.run("snapshot", {"keep": 2, "require_healthy": False})
        assert made.ok and made.data["verified"] is False, made.detail
        names.append(made.data["snapshot"])

    assert [p.name for p in published(root)] == [names[2], names[1], good.name]
    chosen, skipped = select_snapshot(root, chromadb_version())
    assert chosen is not None and chosen.name == good.name
    assert [s.split(":")[0] for s in skipped] == [names[2], names[1]]


def test_older_manifests_without_verification_are_used_after_verified_ones(
    store: Store, tmp_path: Path
) -> None:
    root = tmp_path / "snapshots"
    (good,) = published(shutil.copytree(store.state / "chromadb" / "snapshots", root))
    legacy = [_legacy_copy(good, root, f"20991231T000000{i:06d}Z") for i in (1, 2, 3)]

    assert prune(root, 2, 0.0) == [legacy[0].name]
    assert [p.name for p in published(root)] == [legacy[2].name, legacy[1].name, good.name]
    chosen, skipped = select_snapshot(root, chromadb_version())
    assert chosen is not None and chosen.name == good.name
    assert all("not verified" in s for s in skipped) and len(skipped) == 2

    shutil.rmtree(good)
    one_block(next(p for p in (legacy[2] / "data").iterdir() if p.is_dir()) / "link_lists.bin")
    _reseal(legacy[2])  # checksums match the damaged file: only the graph check can tell
    chosen, skipped = select_snapshot(root, chromadb_version())
    assert chosen is not None and chosen.name == legacy[1].name
    assert skipped[0].startswith(f"{legacy[2].name}: index graph of ")


def _legacy_copy(source: Path, root: Path, name: str) -> Path:
    target = shutil.copytree(source, root / name)
    manifest = _manifest(target)
    del manifest["verified"]
    (target / MANIFEST_NAME).write_text(json.dumps(manifest))
    return target


def _reseal(snapshot: Path) -> None:
    manifest = _manifest(snapshot)
    manifest["files"] = file_digests(snapshot / "data")
    (snapshot / MANIFEST_NAME).write_text(json.dumps(manifest))


def test_the_graph_check_reads_only_the_persisted_format_it_knows(
    store: Store, tmp_path: Path
) -> None:
    segment = shutil.copytree(next(p for p in store.purged.iterdir() if p.is_dir()), tmp_path / "s")
    header = bytearray((segment / "header.bin").read_bytes())
    one_block(segment / "link_lists.bin")
    assert hnsw_graph_problems(segment)
    struct.pack_into("<i", header, 0, 2)  # a future persistence version
    (segment / "header.bin").write_bytes(bytes(header))
    assert hnsw_graph_problems(segment) == []
