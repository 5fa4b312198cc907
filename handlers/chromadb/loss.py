"""What a rollback to a snapshot would discard, and what of it can be replayed.

Compares the current persist directory with the snapshot, per collection, reading both
sqlite files directly (opened ``mode=ro``; nothing here imports chromadb):

- the ids the current store holds that the snapshot lacks (its metadata segment, plus the
  WAL's adds not yet applied): what the rollback would discard;
- the WAL rows written after the snapshot's last sequence number (every add, update, upsert
  and delete since, with its vector, metadata and document while the WAL still holds it):
  what can be replayed into the restored store.

A current sqlite file whose header is damaged is read through a private copy that takes
the header of the snapshot's own sqlite file (same database, same page size). What cannot be
read at all makes the loss uncountable, never zero.
"""

from __future__ import annotations

import array
import json
import shutil
import sqlite3
import struct
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recovery_cli.handlers.base import Loss
from recovery_cli.handlers.chromadb.offline import METADATA_SCOPE, SQLITE_NAME, sqlite_uri_of
from recovery_cli.handlers.util import private_dir

ADD, UPDATE, UPSERT, DELETE = 0, 1, 2, 3  # chromadb's embeddings_queue operation codes
DOCUMENT_KEY = "chroma:document"
HEADER_BYTES = 100
UNDO = (
    "the quarantine keeps the whole previous directory: start a chroma server on a copy of "
    "it (--path COPY) and export the ids listed here into the restored one"
)


@dataclass(frozen=True)
class Change:
    """One WAL row written after the snapshot, decoded for replay."""

    seq: int
    id: str
    operation: int
    vector: tuple[float, ...] | None
    metadata: dict[str, Any] | None
    document: str | None

    @property
    def replayable(self) -> bool:
        """An add or upsert needs its vector; an update or a delete does not."""
        return self.operation in (UPDATE, DELETE) or self.vector is not None

    def to_request(self) -> dict[str, Any]:
        op = {DELETE: "delete", UPDATE: "update"}.get(self.operation, "upsert")
        return {
            "id": self.id,
            "op": op,
            "embedding": list(self.vector) if self.vector is not None else None,
            "metadata": self.metadata,
            "document": self.document,
        }


@dataclass(frozen=True)
class CollectionDelta:
    name: str
    missing: tuple[str, ...]  # in the current store, not in the snapshot
    changes: tuple[Change, ...]  # WAL rows after the snapshot's last sequence number
    snapshot_ids: frozenset[str] = frozenset()
    new: bool = False  # created after the snapshot: the replay creates it again

    def last_changes(self) -> dict[str, Change]:
        latest: dict[str, Change] = {}
        for change in sorted(self.changes, key=lambda c: c.seq):
            latest[change.id] = change
        return latest

    def replayable_missing(self) -> set[str]:
        """Missing ids the WAL can bring back: their last change is an add or upsert with
        its vector."""
        latest = self.last_changes()
        return {
            i
            for i in self.missing
            if i in latest and latest[i].operation in (ADD, UPSERT) and latest[i].replayable
        }

    def replay_plan(self) -> list[dict[str, Any]]:
        """The changes to apply, in order (those that cannot be replayed are left out)."""
        return [c.to_request() for c in sorted(self.changes, key=lambda c: c.seq) if c.replayable]

    def expected_count(self, applied: set[str]) -> int:
        """The collection's count once the changes in ``applied`` are replayed."""
        ids = set(self.snapshot_ids)
        for change in sorted(self.changes, key=lambda c: c.seq):
            if change.id not in applied:
                continue
            if change.operation == DELETE:
                ids.discard(change.id)
            elif change.operation in (ADD, UPSERT):
                ids.add(change.id)
        return len(ids)


@dataclass(frozen=True)
class Delta:
    snapshot: str
    collections: dict[str, CollectionDelta] = field(default_factory=dict)
    unreadable: str = ""  # why the current store could not be read (the loss is uncounted)

    @property
    def missing(self) -> list[str]:
        return [f"{c.name}/{i}" for c in self.collections.values() for i in c.missing]

    def would_lose(self) -> Loss:
        """What the rollback discards before any replay: stable for a given store, so an
        approval's plan hash binds it."""
        if self.unreadable:
            return Loss(
                f"records written after snapshot {self.snapshot} cannot be counted: "
                f"{self.unreadable}",
                None,
                undo=UNDO,
            )
        missing = self.missing
        replayable = sum(len(c.replayable_missing()) for c in self.collections.values())
        changed = sum(len(c.changes) for c in self.collections.values())
        summary = (
            f"{len(missing)} records newer than snapshot {self.snapshot} "
            f"({replayable} replayable from the WAL); {changed} WAL changes since it"
        )
        return Loss(summary, len(missing), tuple(sorted(missing)), undo=UNDO)


def compare(current: Path, snapshot_data: Path, name: str, workdir: Path | None) -> Delta:
    """The delta between the store at ``current`` and the snapshot's ``data`` directory.
    A salvage copy goes below ``workdir`` (None: the system's temp dir)."""
    try:
        with _open(snapshot_data / SQLITE_NAME, None, workdir) as snap:
            reference = _collections(snap)
    except sqlite3.DatabaseError as exc:
        return Delta(name, unreadable=f"snapshot sqlite: {exc}")
    try:
        with _open(current / SQLITE_NAME, snapshot_data / SQLITE_NAME, workdir) as db:
            now = _collections(db)
            deltas = {n: _delta(db, n, now[n], reference.get(n)) for n in sorted(now)}
    except (sqlite3.DatabaseError, OSError) as exc:
        return Delta(name, unreadable=f"{SQLITE_NAME}: {exc}")
    gone = sorted(set(reference) - set(now))
    if gone:
        # a sysdb that lost a collection (deleted and recreated empty, or replaced): what
        # that collection held after the snapshot is nowhere to be counted
        why = f"collections {', '.join(gone)} are not in the current sysdb (lost or recreated)"
        return Delta(name, deltas, unreadable=why)
    return Delta(name, deltas)


@dataclass(frozen=True)
class _Collection:
    id: str
    metadata_segment: str | None
    ids: frozenset[str]
    last_seq: int


def _collections(db: sqlite3.Connection) -> dict[str, _Collection]:
    found: dict[str, _Collection] = {}
    rows = db.execute(
        "SELECT c.name, c.id, (SELECT s.id FROM segments s WHERE s.collection = c.id"
        " AND s.scope = ?) FROM collections c",
        (METADATA_SCOPE,),
    ).fetchall()
    for name, cid, segment in rows:
        ids = {
            r[0]
            for r in db.execute(
                "SELECT embedding_id FROM embeddings WHERE segment_id = ?", (segment,)
            )
        }
        seq = db.execute(
            "SELECT seq_id FROM max_seq_id WHERE segment_id = ?", (segment,)
        ).fetchone()
        found[str(name)] = _Collection(
            str(cid), segment, frozenset(ids), _seq(seq[0] if seq else 0)
        )
    return found


def _seq(value: object) -> int:
    """``max_seq_id.seq_id`` is an integer, or 8 big-endian bytes in older files."""
    if isinstance(value, bytes):
        return int.from_bytes(value, "big")
    return int(value) if isinstance(value, int) else 0


def _delta(
    db: sqlite3.Connection, name: str, now: _Collection, then: _Collection | None
) -> CollectionDelta:
    since = then.last_seq if then is not None else 0
    rows = db.execute(
        "SELECT seq_id, id, operation, vector, encoding, metadata FROM embeddings_queue"
        " WHERE topic LIKE ? AND seq_id > ? ORDER BY seq_id",
        (f"%/{now.id}", since),
    ).fetchall()
    changes = tuple(_change(*row) for row in rows)
    latest = {c.id: c.operation for c in changes}  # rows are in sequence order
    pending = {i for i, op in latest.items() if op in (ADD, UPSERT)}
    deleted = {i for i, op in latest.items() if op == DELETE}
    kept = then.ids if then is not None else frozenset()
    missing = tuple(sorted((now.ids | pending) - deleted - kept))
    return CollectionDelta(name, missing, changes, kept, then is None)


def _change(
    seq: int,
    record_id: str,
    operation: int,
    vector: bytes | None,
    encoding: str | None,
    meta: str | None,
) -> Change:
    metadata: dict[str, Any] | None = None
    document: str | None = None
    if meta:
        try:
            parsed = json.loads(meta)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            document = parsed.pop(DOCUMENT_KEY, None)
            metadata = parsed or None
    return Change(
        int(seq), str(record_id), int(operation), _vector(vector, encoding), metadata, document
    )


def _vector(blob: bytes | None, encoding: str | None) -> tuple[float, ...] | None:
    if not blob or (encoding or "FLOAT32").upper() != "FLOAT32" or len(blob) % 4:
        return None
    values = array.array("f")
    values.frombytes(blob)
    if sys.byteorder != "little":
        values.byteswap()
    return tuple(float(v) for v in values)


@contextmanager
def _open(path: Path, reference: Path | None, workdir: Path | None) -> Iterator[sqlite3.Connection]:
    """``path`` opened read-only; when its header is unreadable and ``reference`` is given,
    a private copy with the reference's header instead."""
    if not path.is_file():
        raise sqlite3.DatabaseError(f"{path.name} is missing")
    db = sqlite3.connect(sqlite_uri_of(path), uri=True, timeout=5)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError:
        db.close()
        if reference is None:
            raise
        with _salvaged(path, reference, workdir) as copy:
            yield copy
        return
    try:
        yield db
    finally:
        db.close()


@contextmanager
def _salvaged(path: Path, reference: Path, workdir: Path | None) -> Iterator[sqlite3.Connection]:
    if workdir is not None:
        private_dir(workdir, parents=True)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="salvage-") as temporary:
        copy = Path(temporary) / SQLITE_NAME
        shutil.copyfile(path, copy)
        with open(reference, "rb") as handle:
            header = bytearray(handle.read(HEADER_BYTES))
        page_size = struct.unpack(">H", header[16:18])[0] or 1
        page_size = 65536 if page_size == 1 else page_size
        header[28:32] = struct.pack(">I", copy.stat().st_size // page_size)
        header[32:40] = bytes(8)  # no freelist: the copy is only read
        with open(copy, "r+b") as handle:
            handle.write(header)
        db = sqlite3.connect(sqlite_uri_of(copy), uri=True, timeout=5)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            yield db
        finally:
            db.close()
