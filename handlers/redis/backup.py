"""Flush backup files: the durable record that makes ``flush_corrupted`` undoable.

One JSON Lines file per flush, in the component's state directory (0700, files 0600):
a header line, one line per key (``DUMP`` payload and TTL, base64), written and fsynced
before any key is deleted, then a result line appended after the deletes saying what
happened to each key. ``restore_flushed`` reads it back.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recovery_cli.handlers.util import file_stamp, fsync_directory, private_dir

FORMAT = "recovery-cli/redis-flush/1"
PREFIX = "flush-"
SUFFIX = ".jsonl"


@dataclass(frozen=True)
class BackupEntry:
    key: bytes
    pttl: int
    dump: bytes


@dataclass(frozen=True)
class Backup:
    path: Path
    header: Mapping[str, Any]
    entries: tuple[BackupEntry, ...]
    # key -> what the flush did to it; empty when the flush stopped before recording it.
    outcome: Mapping[bytes, str] = field(default_factory=dict)

    def to_restore(self) -> tuple[BackupEntry, ...]:
        """Keys the flush deleted; all of them when the flush never recorded its outcome."""
        if not self.outcome:
            return self.entries
        return tuple(e for e in self.entries if self.outcome.get(e.key) == "deleted")


def component_dir(state_dir: Path, component: str) -> Path:
    return private_dir(state_dir / component, parents=True)


def write_backup(
    directory: Path, header: Mapping[str, Any], entries: Iterable[BackupEntry], now: float
) -> Path:
    """Write the whole file under a temporary name, fsync, then rename it into place, so a
    crash never leaves a half backup that looks complete."""
    stamp = file_stamp(now)
    final = directory / f"{PREFIX}{stamp}-{os.getpid()}{SUFFIX}"
    temp = directory / f".{final.name}.tmp"
    lines = [json.dumps({"format": FORMAT, **header})]
    lines += [json.dumps(_entry_record(e)) for e in entries]
    _write_synced(temp, ("\n".join(lines) + "\n").encode())
    os.replace(temp, final)
    fsync_directory(directory)
    return final


def record_outcome(path: Path, outcome: Mapping[bytes, str]) -> None:
    record = {"outcome": {_b64(key): what for key, what in outcome.items()}}
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_backup(path: Path) -> Backup:
    """Raises ``ValueError`` for a file that is not a complete flush backup."""
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    if not lines or lines[0].get("format") != FORMAT:
        raise ValueError(f"{path.name} is not a redis flush backup")
    entries: list[BackupEntry] = []
    outcome: dict[bytes, str] = {}
    for record in lines[1:]:
        if "outcome" in record:
            outcome = {_unb64(k): str(v) for k, v in record["outcome"].items()}
        else:
            entries.append(
                BackupEntry(_unb64(record["key"]), int(record["pttl"]), _unb64(record["dump"]))
            )
    return Backup(path, lines[0], tuple(entries), outcome)


def list_backups(directory: Path) -> list[Path]:
    """Newest first (names carry a UTC timestamp, so name order is time order)."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob(f"{PREFIX}*{SUFFIX}"), reverse=True)


def _entry_record(entry: BackupEntry) -> dict[str, Any]:
    return {"key": _b64(entry.key), "pttl": entry.pttl, "dump": _b64(entry.dump)}


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)
