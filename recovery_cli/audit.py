"""The audit trail: JSON Lines, one file per UTC day, append-only, hash-chained.

Writers hold the state lock; each record is one ``os.write`` on an ``O_APPEND`` descriptor,
length-checked and fsynced. Records always go to the newest day file (a clock stepped back
across midnight does not reopen an older one), so file order is write order and the chain
can be checked file by file. A torn last line (crash, full disk) is cut off by the next writer,
whatever its length, and kept aside in ``audit/torn/``; readers skip and count it. Every
record carries the digest of the line before it (sha256, or HMAC-SHA256 with a key file), and
the store keeps the chain head (file, end offset, digest) in the state file, so an edited,
truncated or deleted tail is detectable too (``verify``).

Readers are linear in file size and bounded in memory: a line longer than ``MAX_LINE`` is
skipped and counted, never held whole.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import hashlib
import hmac
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recovery_cli.errors import StateError
from recovery_cli.handlers.util import format_ts, fsync_directory
from recovery_cli.statedir import open_private, private_subdir

Record = dict[str, Any]
FILE_PATTERN = re.compile(r"^(\d{4}-\d{2}-\d{2})\.jsonl$")
GENESIS_HASH = "0" * 64
KEYED_PREFIX = "hmac:"
BLOCK = 1 << 20
MAX_LINE = 4 << 20  # records the store writes are bounded far below this
LATEST_TIMESTAMP = 253402300799.0  # 9999-12-31T23:59:59Z: the last time a record can show
TS_SHAPE_BYTES = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
SCAN_BLOCK = 8 << 20  # the attempt window's reads: a whole day file in one or two
SUMMARY_DIR = "summaries"  # audit/summaries/<day>.json, what history --stats keeps of a day
SUMMARY_SUFFIX = ".json"


class Event(enum.StrEnum):
    """Every event the tool writes to the trail (a record's ``event``; the playbook
    documents each)."""

    ATTEMPT = "attempt"  # an attempt's intent (outcome started), then its end
    STEP = "step"
    BLOCKED = "blocked"
    APPROVAL_REQUESTED = "approval_requested"
    STILL_WAITING = "still_waiting"
    APPROVED = "approved"
    REJECTED = "rejected"
    APPROVAL_CLOSED = "approval_closed"
    DISABLED = "disabled"
    ENABLED = "enabled"
    DEGRADED_ENTER = "degraded_enter"
    DEGRADED_EXIT = "degraded_exit"
    HOOK = "hook"
    STATE_CHANGED = "state_changed"
    DRILL = "drill"
    AUDIT_DAMAGED = "audit_damaged"  # written by the next writer that finds the tail changed


def parse_ts(text: str) -> float:
    """Epoch seconds of an RFC 3339 time (ours: ``2026-11-22T10:00:00.000000Z``); a time
    without a zone is UTC. Raises ``ValueError`` for anything else."""
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def is_timestamp(value: object) -> bool:
    """A number of seconds that ``format_ts`` can show (finite, 1970 to 9999)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and 0 <= value <= LATEST_TIMESTAMP
    )


def parse_ts_or(value: object, default: float) -> float:
    """A record's ``ts``, or ``default`` when it is missing or unparseable."""
    try:
        return parse_ts(str(value))
    except ValueError:
        return default


def new_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class ChainHead:
    """Where the trail ended after the last write: the file, its size, the last digest."""

    file: str
    offset: int
    digest: str

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "offset": self.offset, "digest": self.digest}

    @classmethod
    def from_json(cls, data: object) -> ChainHead | None:
        if not isinstance(data, dict):
            return None
        try:
            head = cls(str(data["file"]), int(data["offset"]), str(data["digest"]))
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
        if not FILE_PATTERN.match(head.file) or head.offset <= 0:
            return None  # not one the writer saved: never followed outside audit/
        return head


@dataclass
class ReadStats:
    corrupt_lines: int = 0


class Digester:
    """The chain's digest of a line: sha256, or HMAC-SHA256 under a secret key."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key

    def new(self) -> Any:
        if self.key is None:
            return hashlib.sha256()
        return hmac.new(self.key, digestmod=hashlib.sha256)

    def finish(self, state: Any) -> str:
        digest: str = state.hexdigest()
        return digest if self.key is None else KEYED_PREFIX + digest

    def of(self, line: bytes) -> str:
        state = self.new()
        state.update(line.rstrip(b"\n"))
        return self.finish(state)


class AuditLog:
    def __init__(
        self,
        directory: Path,
        redact: Callable[[str], str] = lambda s: s,
        key: bytes | None = None,
    ) -> None:
        self.directory = directory
        self.redact = redact
        self.digester = Digester(key)
        self.stats = ReadStats()

    # -- writing (caller holds the state lock) ---------------------------------------------

    def append(self, record: Record) -> tuple[Record, ChainHead]:
        """Write one record durably; returns it with ``prev_hash`` filled in, and the new
        chain head."""
        path = self._target(record["ts"][:10])
        fd = self._open_for_append(path)
        try:
            size = self._repair_tail(fd, path)
            record["prev_hash"] = (
                self._digest_before(fd, size) if size else self._last_digest_before(path)
            )
            data = self._encode(record)
            self._write_once(fd, data, size, path)
        finally:
            os.close(fd)
        return record, ChainHead(path.name, size + len(data), self.digester.of(data))

    def _encode(self, record: Record) -> bytes:
        clean = map_strings(record, self.redact)
        return self.redact(json.dumps(clean, separators=(",", ":"), default=str)).encode() + b"\n"

    def _target(self, day: str) -> Path:
        """Today's file, unless a newer one exists: then that (the clock went back)."""
        files = self.files()
        if files and files[-1].name[:10] >= day:
            return files[-1]
        if files:  # a new day starts: leave yesterday's file without a torn tail
            with contextlib.suppress(OSError), _opened(files[-1], os.O_RDWR) as fd:
                self._repair_tail(fd, files[-1])
        return self.directory / f"{day}.jsonl"

    def _open_for_append(self, path: Path) -> int:
        created = not os.path.lexists(path)
        try:
            fd = open_private(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        except OSError as exc:
            raise StateError(f"cannot open audit file {path}: {exc.strerror}") from exc
        if created:
            fsync_directory(self.directory)
        return fd

    def _repair_tail(self, fd: int, path: Path) -> int:
        """Move a torn last line (no trailing newline), whatever its length, to
        ``audit/torn/`` and cut it off; returns the size of the complete part."""
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return size
        cut = _line_start(fd, size)
        torn_dir = private_subdir(self.directory / "torn")
        name = f"{path.stem}.{cut}.{new_id()}.torn"
        torn = open_private(torn_dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            for offset in range(cut, size, BLOCK):
                os.write(torn, os.pread(fd, min(BLOCK, size - offset), offset))
            os.fsync(torn)
        finally:
            os.close(torn)
        os.ftruncate(fd, cut)
        os.fsync(fd)
        return cut

    def _digest_before(self, fd: int, end: int) -> str:
        """Digest of the complete line that ends at ``end`` (any length)."""
        start = _line_start(fd, end - 1)
        state = self.digester.new()
        for offset in range(start, end - 1, BLOCK):
            state.update(os.pread(fd, min(BLOCK, end - 1 - offset), offset))
        return str(self.digester.finish(state))

    def _last_digest_before(self, path: Path) -> str:
        older = [p for p in self.files() if p.name < path.name]
        for candidate in reversed(older):
            with _opened(candidate, os.O_RDONLY) as fd:
                size = _complete_size(fd)
                if size:
                    return self._digest_before(fd, size)
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

    # -- the chain head -------------------------------------------------------------------

    def head_damage(self, head: ChainHead | None) -> str | None:
        """What happened to the trail since ``head`` was recorded: ``None`` if it is intact
        (records written after it are fine: a run may die before saving the new head)."""
        if head is None:
            return None
        path = self.directory / head.file
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return f"audit file {head.file} holding the newest records is missing (deleted?)"
        except OSError as exc:
            return f"audit file {head.file} cannot be read: {exc.strerror}"
        try:
            size = os.fstat(fd).st_size
            if size < head.offset:
                return f"{head.file} was cut from {head.offset} to {size} bytes (truncated?)"
            if os.pread(fd, 1, head.offset - 1) != b"\n" or (
                self._digest_before(fd, head.offset) != head.digest
            ):
                return f"{head.file}: the record before byte {head.offset} was changed"
        finally:
            os.close(fd)
        return None

    # -- reading ------------------------------------------------------------------------------

    def files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(
            p
            for p in self.directory.iterdir()
            if FILE_PATTERN.match(p.name) and not p.is_symlink() and p.is_file()
        )

    def files_since(self, day: str) -> list[Path]:
        """Files that can hold records dated ``day`` or later (future-dated ones included)."""
        return [p for p in self.files() if p.name[:10] >= day]

    def read_back(
        self, since: str | None = None, until: str | None = None, contains: bytes | None = None
    ) -> Iterator[Record]:
        """Records newest first (file order, newest file first). Every record of the files
        that can hold ``since`` or later is looked at: one misdated record never hides the
        rest. ``contains`` skips lines without that byte string unparsed.

        Records dated in the future (a clock stepped back) are returned: they stay inside
        every window until real time passes them."""
        files = self.files_since(since[:10]) if since else self.files()
        for path in reversed(files):
            for line in self._lines_back(path):
                ts = _ts_of(line)
                if ts is not None and (
                    (since is not None and ts < since) or (until is not None and ts > until)
                ):
                    continue
                if contains is not None and contains not in line:
                    continue
                record = self._parse(line)
                if record is not None:
                    yield record

    def read_forward(self, since: str | None = None) -> Iterator[Record]:
        files = self.files_since(since[:10]) if since else self.files()
        for path in files:
            for line in self._lines_forward(path):
                record = self._parse(line)
                if record is not None and (since is None or str(record.get("ts", "")) >= since):
                    yield record

    def matching(self, since: str, needle: bytes) -> Iterator[Record]:
        """Every record containing ``needle`` and not dated before ``since``, in the files
        that can hold such records, in file order. The search runs over whole blocks, so
        lines that do not match are never split or parsed (the attempt window reads this
        way). A record whose ``ts`` cannot be read is kept: its reader decides."""
        edge = since.encode()
        for path in self.files_since(since[:10]):
            for line in _lines_containing(path, needle, edge):
                record = self._parse(line)
                if record is not None:
                    yield record

    def _lines_back(self, path: Path) -> Iterator[bytes]:
        lines = _lines_reversed(path)
        last = next(lines, b"")
        if last:  # text after the final newline: a torn tail
            self.stats.corrupt_lines += 1
        for line in lines:
            if line is None:
                self.stats.corrupt_lines += 1
            elif line:
                yield line

    def _lines_forward(self, path: Path) -> Iterator[bytes]:
        for line, _digest in _lines_with_digests(path, None):
            if line is None or not line.endswith(b"\n"):
                self.stats.corrupt_lines += 1
            else:
                yield line

    def _parse(self, line: bytes) -> Record | None:
        return parse_line(line, self.stats)

    # -- maintenance --------------------------------------------------------------------------

    def prunable(self, retention_days: int, now: float) -> list[Path]:
        """Day files older than the retention. The age is measured from the newest record
        or the clock, whichever is earlier, and the newest ``retention_days`` files are
        always kept: a clock running fast can never empty the trail."""
        files = self.files()
        reference = min(now, self._newest_ts(files, now))
        cutoff = format_ts(max(0.0, reference - retention_days * 86400))[:10]
        return [p for p in files[: max(0, len(files) - retention_days)] if p.name < cutoff]

    def prune(self, retention_days: int, now: float) -> list[Path]:
        removed = self.prunable(retention_days, now)
        self.remove_days(removed)
        return removed

    def remove_days(self, paths: list[Path]) -> None:
        """Delete day files, then every entry of ``audit/summaries/`` that is not the summary
        of a day file still here (theirs, and temp files a killed reader left). The summaries
        directory is never followed through a symlink."""
        for path in paths:
            path.unlink()
        kept = {p.stem + SUMMARY_SUFFIX for p in self.files()}
        with (
            contextlib.suppress(OSError),
            _opened(self.directory / SUMMARY_DIR, os.O_RDONLY | os.O_DIRECTORY) as summaries,
        ):
            for name in set(os.listdir(summaries)) - kept:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=summaries)

    def tail_digest(self, fd: int) -> str:
        """The digest of the last complete line of the open file ``fd`` (``GENESIS_HASH``
        when it has none)."""
        size = _complete_size(fd)
        return self._digest_before(fd, size) if size else GENESIS_HASH

    def read_file(self, path: Path) -> Iterator[Record]:
        for line in self._lines_forward(path):
            record = self._parse(line)
            if record is not None:
                yield record

    def _newest_ts(self, files: list[Path], default: float) -> float:
        for path in reversed(files):
            for line in self._lines_back(path):
                return parse_ts_or(_ts_of(line), default)
        return default

    def verify(self, head: ChainHead | None = None) -> list[str]:
        """Problems with the hash chain and the chain head, one line each (empty: intact)."""
        problems: list[str] = []
        previous: str | None = None
        keyed_seen = False
        for path in self.files():
            for number, (line, digest) in enumerate(_lines_with_digests(path, self.digester), 1):
                where = f"{path.name}:{number}"
                link, keyed = check_link(where, line, previous, self.digester)
                if keyed_seen and not keyed and line is not None:
                    link.append(f"{where}: not keyed after keyed records (re-chained?)")
                problems += link
                keyed_seen = keyed_seen or keyed
                previous = digest
        damage = self.head_damage(head)
        if damage:
            problems.append(f"chain head: {damage}")
        return problems


def check_link(
    where: str, line: bytes | None, previous: str | None, digester: Digester
) -> tuple[list[str], bool]:
    """(problems, whether the line is keyed) for one line against the digest before it."""
    if line is None:
        return [f"{where}: line longer than {MAX_LINE} bytes"], False
    if not line.endswith(b"\n"):
        return [f"{where}: torn line"], False
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return [f"{where}: not a JSON record"], False
    if not isinstance(record, dict):
        return [f"{where}: not a JSON record"], False
    recorded = str(record.get("prev_hash"))
    keyed = recorded.startswith(KEYED_PREFIX)
    problems = []
    if keyed and digester.key is None:
        problems.append(f"{where}: keyed record; set audit.hmac_key_file to check it")
    elif previous is not None and recorded != previous:
        problems.append(f"{where}: prev_hash does not match the line before (edited or removed)")
    if parse_ts_or(record.get("ts"), -1.0) < 0:
        problems.append(f"{where}: unparseable ts {str(record.get('ts'))[:40]!r}")
    if record.get("event") == Event.AUDIT_DAMAGED:
        problems.append(f"{where}: damage found by a later write: {record.get('detail')}")
    return problems, keyed


def parse_line(line: bytes | str, stats: ReadStats) -> Record | None:
    """The record a trail line holds; None (counted in ``stats``) when it holds none."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        stats.corrupt_lines += 1
        return None
    if not isinstance(record, dict) or not isinstance(record.get("ts"), str):
        stats.corrupt_lines += 1
        return None
    return record


def map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {fn(str(k)): map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [map_strings(v, fn) for v in value]
    return value


def _ts_of(line: bytes) -> str | None:
    """The ``ts`` of a compact record without parsing it (records start with ``{"ts":"``)."""
    if line.startswith(b'{"ts":"') and len(line) > 34:
        return line[7:34].decode("ascii", errors="replace")
    return None


@contextlib.contextmanager
def _opened(path: Path, flags: int) -> Iterator[int]:
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def _line_start(fd: int, end: int) -> int:
    """Offset just after the last newline before ``end`` (0 if there is none)."""
    position = end
    while position > 0:
        step = min(BLOCK, position)
        position -= step
        found = os.pread(fd, step, position).rfind(b"\n")
        if found >= 0:
            return position + found + 1
    return 0


def _complete_size(fd: int) -> int:
    """The size of the part of the file that ends with a newline."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        return _line_start(fd, size)
    return size


def _lines_reversed(path: Path) -> Iterator[bytes | None]:
    """Lines from the end, each read once: linear in the file size. The first item is
    whatever follows the last newline; a line longer than ``MAX_LINE`` comes as ``None``."""
    with _opened(path, os.O_RDONLY) as fd:
        position = os.fstat(fd).st_size
        pending: list[bytes] = []  # pieces of the current line, newest first
        pending_size = 0
        while position > 0:
            step = min(BLOCK, position)
            position -= step
            block = os.pread(fd, step, position)
            end = len(block)
            cut = block.rfind(b"\n", 0, end)
            while cut >= 0:
                yield _assemble(block[cut + 1 : end], pending, pending_size)
                pending, pending_size = [], 0
                end = cut
                cut = block.rfind(b"\n", 0, end)
            if pending_size <= MAX_LINE:
                pending.append(block[:end])
            pending_size += end
        yield _assemble(b"", pending, pending_size)


def _assemble(head: bytes, pending: list[bytes], pending_size: int) -> bytes | None:
    if pending_size + len(head) > MAX_LINE:
        return None
    return head + b"".join(reversed(pending)) if pending else head


def _lines_with_digests(
    path: Path, digester: Digester | None
) -> Iterator[tuple[bytes | None, str | None]]:
    """Lines from the start, with their chain digest when ``digester`` is given. A line
    longer than ``MAX_LINE`` comes as ``None`` (its digest still computed, streamed)."""
    with _opened(path, os.O_RDONLY) as fd, os.fdopen(os.dup(fd), "rb") as handle:
        while True:
            line: bytes = handle.readline(MAX_LINE + 1)
            if not line:
                return
            if len(line) <= MAX_LINE or line.endswith(b"\n"):
                yield line, digester.of(line) if digester else None
                continue
            yield None, _stream_rest(handle, line, digester)


def _stream_rest(handle: Any, start: bytes, digester: Digester | None) -> str | None:
    state = digester.new() if digester else None
    chunk = start
    while chunk:
        piece = chunk.rstrip(b"\n") if chunk.endswith(b"\n") else chunk
        if state is not None:
            state.update(piece)
        if chunk.endswith(b"\n"):
            break
        chunk = handle.readline(BLOCK)
    return digester.finish(state) if digester and state is not None else None


def _lines_containing(path: Path, needle: bytes, edge: bytes) -> Iterator[bytes]:
    """Complete lines of ``path`` that contain ``needle`` and are not dated before ``edge``,
    found block by block (a line whose ``ts`` cannot be read is kept)."""
    with _opened(path, os.O_RDONLY) as fd:
        size = os.fstat(fd).st_size
        carry = b""
        offset = 0
        while offset < size:
            block = carry + os.pread(fd, min(SCAN_BLOCK, size - offset), offset)
            offset += SCAN_BLOCK
            end = block.rfind(b"\n") + 1
            yield from _matches_in(block, end, needle, edge)
            carry = block[end:] if len(block) - end <= MAX_LINE else b""


def _matches_in(data: bytes, end: int, needle: bytes, edge: bytes) -> list[bytes]:
    """The hot loop of the attempt window: C-level searches, one slice per kept line."""
    kept = []
    find, rfind, starts = data.find, data.rfind, data.startswith
    found = find(needle, 0, end)
    while found >= 0:
        start = rfind(b"\n", 0, found) + 1
        stop = find(b"\n", found, end) + 1
        stamp = data[start + 7 : start + 34]
        if not (starts(b'{"ts":"', start) and stamp < edge and TS_SHAPE_BYTES.match(stamp)):
            kept.append(data[start:stop])
        found = find(needle, stop, end)
    return kept


def _truncate_quietly(fd: int, size: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, size)
