"""Snapshots of a stopped Chroma persist directory, and their restore.

A snapshot is ``<root>/<stamp>/`` holding ``data/`` (the sqlite file copied with sqlite's
backup API, plus every segment directory) and ``MANIFEST.json`` (sha256 and size of every
file, the chromadb version, per-collection counts). It is built in ``<stamp>.partial`` and
published with one rename, so a reader never sees half a snapshot. Restores never delete:
what they replace is moved to a quarantine directory next to the persist directory.

A snapshot is published only if every vector segment in the copy passes the HNSW graph
check; its manifest's ``verified`` block records that and the self-recall sample of the
probe taken just before. Choosing and pruning prefer verified snapshots: a rollback target
is one whose index was shown to answer, and rotation never removes the newest such one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recovery_cli.handlers.chromadb.offline import SQLITE_NAME, sqlite_uri_of
from recovery_cli.handlers.chromadb.probe import hnsw_graph_problems
from recovery_cli.handlers.util import file_stamp, format_ts, fsync_directory, private_dir

MANIFEST_NAME = "MANIFEST.json"
DATA_DIR = "data"
PARTIAL_SUFFIX = ".partial"
MANIFEST_FORMAT = 1
STALE_PARTIAL_SECONDS = 3600
# sqlite side files are never copied: the backup API writes a complete database file.
SKIPPED_NAMES = frozenset({f"{SQLITE_NAME}-journal", f"{SQLITE_NAME}-wal", f"{SQLITE_NAME}-shm"})


@dataclass(frozen=True)
class Snapshot:
    path: Path
    manifest: Mapping[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def data(self) -> Path:
        return self.path / DATA_DIR

    @property
    def version(self) -> str:
        return str(self.manifest.get("chromadb_version", ""))

    def counts(self) -> dict[str, int]:
        return {name: int(c["count"]) for name, c in self.manifest.get("collections", {}).items()}

    @property
    def verified(self) -> bool:
        """Taken from a store whose probe (self-recall included) and graph check passed.
        Manifests from before the check have no ``verified`` block: unverified."""
        record = self.manifest.get("verified")
        return isinstance(record, dict) and record.get("ok") is True


class DamagedIndex(Exception):
    """The copy about to be published holds an HNSW graph that fails its check."""


def chromadb_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chromadb")
    except PackageNotFoundError:
        return "unknown"


def ensure_private_dir(path: Path) -> Path:
    return private_dir(path, parents=True)


def create_snapshot(
    source: Path,
    root: Path,
    facts: Mapping[str, Any],
    now: float,
    self_recall: Mapping[str, Any],
) -> Snapshot:
    """Copy the (stopped) persist directory ``source`` into a new snapshot under ``root``.
    ``facts`` (collections, WAL state) go into the manifest as they are; ``self_recall``
    (``sampled``, ``ok``) is what the probe before the copy found. Raises DamagedIndex,
    publishing nothing, when a graph in the copy fails its check."""
    ensure_private_dir(root)
    name = file_stamp(now)
    partial = root / f"{name}{PARTIAL_SUFFIX}"
    partial.mkdir(mode=0o700)
    try:
        _copy_tree_consistent(source, partial / DATA_DIR)
        segments = graph_problems(partial / DATA_DIR)
        damaged = {segment: found for segment, found in segments.items() if found}
        if damaged:
            raise DamagedIndex("; ".join(f"{s}: {p[0]}" for s, p in sorted(damaged.items())))
        manifest = {
            "format": MANIFEST_FORMAT,
            "created": format_ts(now),
            "chromadb_version": chromadb_version(),
            "source": str(source),
            "files": file_digests(partial / DATA_DIR),
            **facts,
            "verified": verification(self_recall, len(segments), now),
        }
        _write_private(partial / MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True))
        final = root / name
        os.rename(partial, final)
        fsync_directory(root)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return Snapshot(final, manifest)


def verification(self_recall: Mapping[str, Any], segments: int, now: float) -> dict[str, Any]:
    recall = {"sampled": int(self_recall.get("sampled", 0)), "ok": self_recall.get("ok") is True}
    return {
        "ok": recall["ok"],  # the graph check passed, or nothing would be published
        "at": format_ts(now),
        "self_recall": recall,
        "graph": {"segments": segments, "ok": True},
    }


def graph_problems(data: Path) -> dict[str, list[str]]:
    """The graph check of every vector segment directory under ``data``."""
    return {
        entry.name: hnsw_graph_problems(entry)
        for entry in sorted(data.iterdir())
        if entry.is_dir() and (entry / "header.bin").is_file()
    }


def _copy_tree_consistent(source: Path, target: Path) -> None:
    target.mkdir(mode=0o700)
    for entry in sorted(source.iterdir()):
        if entry.name == SQLITE_NAME:
            _backup_sqlite(entry, target / SQLITE_NAME)
        elif entry.name in SKIPPED_NAMES:
            continue
        elif entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, target / entry.name, follow_symlinks=False)


def _backup_sqlite(source: Path, target: Path) -> None:
    src = sqlite3.connect(sqlite_uri_of(source), uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    target.chmod(0o600)


def file_digests(directory: Path) -> dict[str, dict[str, Any]]:
    digests: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.is_symlink()):
        digests[str(path.relative_to(directory))] = {
            "sha256": sha256(path),
            "size": path.stat().st_size,
        }
    return digests


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def load_snapshot(path: Path) -> Snapshot | None:
    try:
        manifest = json.loads((path / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return Snapshot(path, manifest) if isinstance(manifest, dict) else None


def published(root: Path) -> list[Path]:
    """Published snapshot directories, newest first (names are UTC stamps)."""
    if not root.is_dir():
        return []
    return sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.endswith(PARTIAL_SUFFIX)),
        key=lambda p: p.name,
        reverse=True,
    )


def verify_snapshot(snapshot: Snapshot, only: str | None = None) -> list[str]:
    """Every problem with the snapshot's files against its manifest (empty: intact).
    ``only`` limits the check to one top-level entry (a segment directory)."""
    files = snapshot.manifest.get("files")
    if snapshot.manifest.get("format") != MANIFEST_FORMAT or not isinstance(files, dict):
        return ["manifest has an unknown format"]
    problems = []
    for relative, expected in files.items():
        if only is not None and relative.split("/", 1)[0] != only:
            continue
        path = snapshot.data / relative
        if not path.is_file():
            problems.append(f"{relative} is missing")
        elif path.stat().st_size != expected.get("size") or sha256(path) != expected.get("sha256"):
            problems.append(f"{relative} does not match its checksum")
    return problems


def select_snapshot(root: Path, version: str) -> tuple[Snapshot | None, list[str]]:
    """The snapshot to restore: taken with ``version``, intact, and its index graphs pass
    the check; verified ones first (newest first), then unverified ones (newest first).
    Also: why each one tried before it was passed over."""
    skipped: list[str] = []
    loaded: list[Snapshot] = []
    for path in published(root):
        snapshot = load_snapshot(path)
        if snapshot is None:
            skipped.append(f"{path.name}: no readable manifest")
        else:
            loaded.append(snapshot)
    # sorted() is stable: within each group the order stays newest first
    for snapshot in sorted(loaded, key=lambda s: not s.verified):
        reason = _unusable(snapshot, version)
        if reason:
            skipped.append(f"{snapshot.name}: {reason}")
            continue
        if snapshot.verified:
            newer = [s.name for s in loaded if not s.verified and s.name > snapshot.name]
            skipped += [f"{name}: not verified, a verified snapshot comes first" for name in newer]
        return snapshot, skipped
    return None, skipped


def _unusable(snapshot: Snapshot, version: str) -> str:
    if snapshot.version != version:
        return f"taken with chromadb {snapshot.version}, running {version}"
    problems = verify_snapshot(snapshot)
    if problems:
        return problems[0]
    damaged = {s: p for s, p in graph_problems(snapshot.data).items() if p}
    if damaged:
        segment, found = sorted(damaged.items())[0]
        return f"index graph of {segment} is damaged: {found[0]}"
    return ""


def restore_directory(
    snapshot: Snapshot, target: Path, quarantine: Path, now: float
) -> Path | None:
    """Replace ``target`` with the snapshot's data; the old directory moves to
    ``quarantine`` (returned), never deleted. Both renames stay on one filesystem."""
    staging = target.with_name(f".{target.name}.restore-{file_stamp(now)}")
    shutil.copytree(snapshot.data, staging, symlinks=True)
    _match_owner(staging, target if target.exists() else target.parent)
    moved: Path | None = None
    if target.exists():
        os.rename(target, quarantine)
        moved = quarantine
    os.rename(staging, target)
    fsync_directory(target.parent)
    return moved


def restore_segment(
    snapshot: Snapshot, segment: str, target: Path, quarantine: Path, now: float
) -> Path | None:
    """Put one segment directory back from the snapshot; the damaged one is quarantined."""
    staging = target / f".{segment}.restore-{file_stamp(now)}"
    shutil.copytree(snapshot.data / segment, staging, symlinks=True)
    _match_owner(staging, target)
    moved = quarantine_entry(target / segment, quarantine)
    os.rename(staging, target / segment)
    fsync_directory(target)
    return moved


def _match_owner(tree: Path, reference: Path) -> None:
    """Give restored files the owner of the directory they replace: run as root, the copy
    would otherwise belong to root and a server running as its own user could not write."""
    if os.geteuid() != 0:
        return
    owner = reference.stat()
    for path in (tree, *tree.rglob("*")):
        os.lchown(path, owner.st_uid, owner.st_gid)


def quarantine_entry(path: Path, quarantine: Path) -> Path | None:
    """Move ``path`` (if present) into the ``quarantine`` directory; returns its new place."""
    if not path.exists():
        return None
    ensure_private_dir(quarantine)
    moved = quarantine / path.name
    os.rename(path, moved)
    return moved


def prune(root: Path, keep: int, now: float) -> list[str]:
    """Remove published snapshots beyond the newest ``keep``, except the newest verified
    one, and partial ones left by a crashed run; returns the names removed."""
    removed = []
    snapshots = published(root)
    spared = newest_verified(snapshots)
    for path in snapshots[keep:]:
        if path == spared:
            continue
        shutil.rmtree(path)
        removed.append(path.name)
    for path in root.glob(f"*{PARTIAL_SUFFIX}") if root.is_dir() else ():
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > STALE_PARTIAL_SECONDS:
                shutil.rmtree(path)
                removed.append(path.name)
    return removed


def newest_verified(paths: list[Path]) -> Path | None:
    for path in paths:
        snapshot = load_snapshot(path)
        if snapshot is not None and snapshot.verified:
            return path
    return None


def directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
