"""Read-only checks of a Chroma persist directory (chromadb 1.5.x layout).

Safe while the server is stopped, and for an embedded ``PersistentClient`` path. Nothing
here imports chromadb: the layout is read with sqlite3 (opened ``mode=ro``) and os.

Layout: ``DIR/chroma.sqlite3`` holds the sysdb, the metadata segment and the WAL
(``embeddings_queue``); each collection's vectors live in ``DIR/<vector-segment-id>/``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

SQLITE_NAME = "chroma.sqlite3"
# index_metadata.pickle is only written at the first index flush, so it is checked apart.
SEGMENT_FILES = ("header.bin", "data_level0.bin", "length.bin", "link_lists.bin")
PICKLE_NAME = "index_metadata.pickle"
VECTOR_SCOPE = "VECTOR"
METADATA_SCOPE = "METADATA"


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    id: str
    dimension: int | None
    count: int
    vector_segment: str | None
    wal_rows: int
    # the last WAL sequence number the vector index holds on disk (sysdb ``max_seq_id``);
    # on load Chroma replays the WAL after it
    vector_seq: int | None = None


@dataclass(frozen=True)
class OfflineReport:
    """What the directory looks like. ``failure_type`` names the worst finding (None: clean)."""

    failure_type: str | None
    findings: tuple[str, ...]
    collections: dict[str, CollectionInfo] = field(default_factory=dict)
    wal_rows: int = 0
    auto_purge: bool | None = None
    orphan_dirs: tuple[str, ...] = ()
    missing_index: tuple[str, ...] = ()  # collections whose vector segment is gone or partial

    @property
    def detail(self) -> str:
        if self.findings:
            return "; ".join(self.findings)
        purge = {True: "on", False: "off", None: "unknown"}[self.auto_purge]
        return f"persist directory consistent; WAL {self.wal_rows} rows, auto-purge {purge}"

    def wal_covers(self, name: str) -> bool:
        """True when the WAL still holds every record of the collection, so Chroma can
        rebuild its vector index from the WAL alone."""
        info = self.collections.get(name)
        return info is not None and info.count > 0 and info.wal_rows >= info.count


def sqlite_uri(directory: Path) -> str:
    return sqlite_uri_of(directory / SQLITE_NAME)


def sqlite_uri_of(path: Path) -> str:
    """A read-only sqlite URI for ``path``, percent-encoded: a ``#``, ``?`` or ``%`` in a
    directory name must not end the path or drop ``mode=ro``."""
    return f"{path.absolute().as_uri()}?mode=ro"


def inspect_directory(directory: Path, expected: tuple[str, ...]) -> OfflineReport:
    """Check ``directory`` without changing it; ``expected`` are the configured collections."""
    sqlite_path = directory / SQLITE_NAME
    if not sqlite_path.is_file():
        return _missing_sqlite(directory, expected)
    try:
        return _inspect_sqlite(directory, expected)
    except sqlite3.DatabaseError as exc:
        return OfflineReport("sqlite_corrupt", (f"{SQLITE_NAME}: {exc}",))


def _missing_sqlite(directory: Path, expected: tuple[str, ...]) -> OfflineReport:
    orphans = tuple(sorted(p.name for p in _segment_like_dirs(directory)))
    findings = [f"{SQLITE_NAME} is missing from {directory}"]
    if orphans:
        findings.append(f"{len(orphans)} segment directories without a sysdb (sysdb lost)")
    # Chroma would silently create an empty database here; the collections are gone from it.
    failure = "collection_missing" if expected or orphans else None
    return OfflineReport(failure, tuple(findings), orphan_dirs=orphans)


def _inspect_sqlite(directory: Path, expected: tuple[str, ...]) -> OfflineReport:
    with sqlite3.connect(sqlite_uri(directory), uri=True, timeout=2) as db:
        problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            return OfflineReport("sqlite_corrupt", tuple(f"quick_check: {p}" for p in problems[:5]))
        collections = _collections(db)
        wal_rows = int(db.execute("SELECT count(*) FROM embeddings_queue").fetchone()[0])
        auto_purge = _auto_purge(db)
        known_segments = {str(row[0]) for row in db.execute("SELECT id FROM segments")}
    db.close()
    findings, missing_index = _segment_findings(directory, collections)
    failure = "hnsw_missing_silent" if missing_index else None
    missing = [name for name in expected if name not in collections]
    if missing:
        findings.append(f"collections missing from the sysdb: {', '.join(missing)}")
        failure = failure or "collection_missing"
    orphans = tuple(
        sorted(p.name for p in _segment_like_dirs(directory) if p.name not in known_segments)
    )
    if orphans:
        findings.append(f"orphan segment directories: {', '.join(orphans[:5])}")
    return OfflineReport(
        failure, tuple(findings), collections, wal_rows, auto_purge, orphans, missing_index
    )


def _collections(db: sqlite3.Connection) -> dict[str, CollectionInfo]:
    rows = db.execute(
        "SELECT c.name, c.id, c.dimension,"
        " (SELECT s.id FROM segments s WHERE s.collection = c.id AND s.scope = ?),"
        " (SELECT s.id FROM segments s WHERE s.collection = c.id AND s.scope = ?)"
        " FROM collections c",
        (VECTOR_SCOPE, METADATA_SCOPE),
    ).fetchall()
    found: dict[str, CollectionInfo] = {}
    for name, cid, dimension, vector_segment, metadata_segment in rows:
        count = db.execute(
            "SELECT count(*) FROM embeddings WHERE segment_id = ?", (metadata_segment,)
        ).fetchone()[0]
        # WAL topics look like persistent://<tenant>/<database>/<collection id>.
        wal = db.execute(
            "SELECT count(DISTINCT id) FROM embeddings_queue WHERE topic LIKE ?", (f"%/{cid}",)
        ).fetchone()[0]
        seq = db.execute(
            "SELECT seq_id FROM max_seq_id WHERE segment_id = ?", (vector_segment,)
        ).fetchone()
        found[name] = CollectionInfo(
            name, cid, dimension, int(count), vector_segment, int(wal), _seq(seq)
        )
    return found


def _seq(row: tuple[object, ...] | None) -> int | None:
    """``max_seq_id.seq_id``: an integer, or 8 big-endian bytes in older files."""
    if row is None:
        return None
    value = row[0]
    if isinstance(value, bytes):
        return int.from_bytes(value, "big")
    return int(value) if isinstance(value, int) else None


def _auto_purge(db: sqlite3.Connection) -> bool | None:
    row = db.execute("SELECT config_json_str FROM embeddings_queue_config LIMIT 1").fetchone()
    if row is None:
        return None
    try:
        return bool(json.loads(row[0]).get("automatically_purge", True))
    except (ValueError, AttributeError):
        return None


def _segment_findings(
    directory: Path, collections: dict[str, CollectionInfo]
) -> tuple[list[str], tuple[str, ...]]:
    findings: list[str] = []
    damaged: list[str] = []
    for info in collections.values():
        if info.vector_segment is None or info.count <= info.wal_rows:
            continue  # empty, or still fully in the WAL: Chroma rebuilds it on load
        missing = _missing_files(directory / info.vector_segment, info.name)
        if missing:
            findings += missing
            damaged.append(info.name)
    return findings, tuple(damaged)


def _missing_files(segment: Path, name: str) -> list[str]:
    if not segment.is_dir():
        return [f"collection {name}: vector segment directory {segment.name} is missing"]
    missing = [f for f in (*SEGMENT_FILES, PICKLE_NAME) if not (segment / f).is_file()]
    if missing:
        return [f"collection {name}: segment {segment.name} lacks {', '.join(missing)}"]
    return []


def _segment_like_dirs(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return [
        p
        for p in directory.iterdir()
        if p.is_dir() and len(p.name) == 36 and p.name.count("-") == 4
    ]
