"""The audit trail: JSON Lines, one file per UTC day, append-only.

Writers hold the state lock; each record is one ``os.write`` on an ``O_APPEND`` descriptor,
length-checked and fsynced. A torn last line (crash, full disk) is cut off by the next writer
and kept aside in ``audit/torn/``; readers skip and count it. Every record carries the sha256
of the line before it, so an edited or truncated trail is detectable (``verify``).

Timestamps are fixed-width RFC 3339 UTC strings, so they compare correctly as text: readers
find a window's edge without parsing every line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recovery_cli.errors import StateError
from recovery_cli.handlers.base import fsync_directory

Record = dict[str, Any]
FILE_PATTERN = re.compile(r"^(\d{4}-\d{2}-\d{2})\.jsonl$")
GENESIS_HASH = "0" * 64
READ_BLOCK = 1 << 16
TAIL_PROBE = 1 << 16


def format_ts(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


@dataclass
class ReadStats:
    corrupt_lines: int = 0


class AuditLog:
    def __init__(self, directory: Path, redact: Callable[[str], str] = lambda s: s) -> None:
        self.directory = directory
        self.redact = redact
        self.stats = ReadStats()

    # -- writing (caller holds the state lock) ---------------------------------------------

    def append(self, record: Record) -> Record:
        """Write one record durably; returns it with ``prev_hash`` filled in."""
        path = self.directory / f"{record['ts'][:10]}.jsonl"
        fd = self._open_for_append(path)
        try:
            size = self._repair_tail(fd, path)
            record["prev_hash"] = self._previous_hash(fd, size, path)
            data = (
                self.redact(json.dumps(record, separators=(",", ":"), default=str)).encode() + b"\n"
            )
            self._write_once(fd, data, size, path)
        finally:
            os.close(fd)
        return record

    def _open_for_append(self, path: Path) -> int:
        created = not path.exists()
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise StateError(f"cannot open audit file {path}: {exc.strerror}") from exc
        if created:
            fsync_directory(self.directory)
        return fd

    def _repair_tail(self, fd: int, path: Path) -> int:
        """Cut a torn last line (no trailing newline) and keep it aside; returns the size."""
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return size
        start = max(0, size - TAIL_PROBE)
        tail = os.pread(fd, size - start, start)
        cut = start + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
        fragment = os.pread(fd, size - cut, cut)
        torn_dir = self.directory / "torn"
        torn_dir.mkdir(mode=0o700, exist_ok=True)
        (torn_dir / f"{path.stem}.{cut}.torn").write_bytes(fragment)
        os.ftruncate(fd, cut)
        os.fsync(fd)
        return cut

    def _previous_hash(self, fd: int, size: int, path: Path) -> str:
        if size == 0:
            return self._hash_of_previous_file(path)
        start = max(0, size - TAIL_PROBE)
        tail = os.pread(fd, size - start, start).rstrip(b"\n")
        return line_hash(tail.rsplit(b"\n", 1)[-1])

    def _hash_of_previous_file(self, path: Path) -> str:
        older = [p for p in self.files() if p.name < path.name]
        if not older:
            return GENESIS_HASH
        for line in _lines_reversed(older[-1]):
            if line:
                return line_hash(line)
        return GENESIS_HASH

    def _write_once(self, fd: int, data: bytes, size: int, path: Path) -> None:
        try:
            written = os.write(fd, data)
            if written != len(data):
                os.ftruncate(fd, size)
                raise StateError(
                    f"audit write to {path} was cut short "
                    f"({written} of {len(data)} bytes): disk full?"
                )
            os.fsync(fd)
        except OSError as exc:
            _truncate_quietly(fd, size)
            raise StateError(f"cannot write audit record to {path}: {exc.strerror}") from exc

    # -- reading ------------------------------------------------------------------------------

    def files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(
            p for p in self.directory.iterdir() if FILE_PATTERN.match(p.name) and p.is_file()
        )

    def read_back(
        self, since: str | None = None, until: str | None = None, contains: bytes | None = None
    ) -> Iterator[Record]:
        """Records newest first (file order, newest file first), stopping at the first record
        older than ``since``. ``contains`` skips lines without that byte string unparsed.

        Records dated in the future (a clock stepped back) are returned: they stay inside
        every window until real time passes them."""
        for path in reversed(self.files()):
            if since is not None and path.name[:10] < since[:10]:
                return
            for line in self._lines(path):
                ts = _ts_of(line)
                if since is not None and ts is not None and ts < since:
                    return
                if until is not None and ts is not None and ts > until:
                    continue
                if contains is not None and contains not in line:
                    continue
                record = self._parse(line)
                if record is not None:
                    yield record

    def read_forward(self, since: str | None = None) -> Iterator[Record]:
        for path in self.files():
            if since is not None and path.name[:10] < since[:10]:
                continue
            with path.open("rb") as handle:
                for line in handle:
                    if not line.endswith(b"\n"):
                        self.stats.corrupt_lines += 1
                        continue
                    record = self._parse(line)
                    if record is not None and (since is None or str(record.get("ts", "")) >= since):
                        yield record

    def _lines(self, path: Path) -> Iterator[bytes]:
        lines = _lines_reversed(path)
        last = next(lines, b"")
        if last:  # text after the final newline: a torn tail
            self.stats.corrupt_lines += 1
        yield from (line for line in lines if line)

    def _parse(self, line: bytes) -> Record | None:
        try:
            record = json.loads(line)
        except ValueError:
            self.stats.corrupt_lines += 1
            return None
        if not isinstance(record, dict) or "ts" not in record:
            self.stats.corrupt_lines += 1
            return None
        return record

    # -- maintenance --------------------------------------------------------------------------

    def prune(self, retention_days: int, now: float) -> list[Path]:
        cutoff = format_ts(now - retention_days * 86400)[:10]
        removed = [p for p in self.files() if p.name[:10] < cutoff]
        for path in removed:
            path.unlink()
        return removed

    def verify(self) -> list[str]:
        """Problems with the hash chain, one line each (empty: intact)."""
        problems: list[str] = []
        previous: str | None = None
        for path in self.files():
            with path.open("rb") as handle:
                for number, line in enumerate(handle, 1):
                    problems += _check_link(path, number, line, previous)
                    previous = line_hash(line)
        return problems


def _check_link(path: Path, number: int, line: bytes, previous: str | None) -> list[str]:
    if not line.endswith(b"\n"):
        return [f"{path.name}:{number}: torn line"]
    try:
        recorded = json.loads(line).get("prev_hash")
    except (ValueError, AttributeError):
        return [f"{path.name}:{number}: not a JSON record"]
    if previous is not None and recorded != previous:
        return [
            f"{path.name}:{number}: prev_hash does not match the line before "
            "(edited or removed lines)"
        ]
    return []


def _ts_of(line: bytes) -> str | None:
    """The ``ts`` of a compact record without parsing it (records start with ``{"ts":"``)."""
    if line.startswith(b'{"ts":"') and len(line) > 34:
        return line[7:34].decode("ascii", errors="replace")
    return None


def _lines_reversed(path: Path) -> Iterator[bytes]:
    """Lines from the end. The first item is whatever follows the last newline."""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        position = handle.tell()
        buffer = b""
        while position > 0:
            step = min(READ_BLOCK, position)
            position -= step
            handle.seek(position)
            buffer = handle.read(step) + buffer
            parts = buffer.split(b"\n")
            buffer = parts[0]
            yield from reversed(parts[1:])
        yield buffer


def _truncate_quietly(fd: int, size: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, size)
