"""Per-day summaries of the audit trail, so ``history --stats`` over many days reads a few
small files instead of every record.

A day file that is not the newest is complete: the writer only ever appends to the newest one.
The first ``--stats`` that parses a complete day keeps what it counted in
``audit/summaries/<day>.json``: the step tally, the span of the steps' ``ts``, the day's
lifecycle changes (``state_changed``, for the incidents and uptime), the count of skipped
lines, and the file's fingerprint (size, inode, mtime and ctime in ns, the digest of
its last line). A summary is used only for a day that lies wholly inside the query's window
and only while the fingerprint still matches the file; any change to the file (an edit moves
its ctime) has it parsed again and the summary rebuilt. A summary is written to a temp file,
fsynced and renamed over the old one, and only once its day file has been left alone for
``SETTLE_NS`` by the file system's clock (an edit within the same timestamp tick could not be
told apart). Its own digest (an HMAC under ``audit.hmac_key_file`` when one is set) covers it
all: a summary that is garbage, of the wrong shape or size, a symlink, or not this file's is
ignored and rebuilt, never trusted over the file.

Summaries are a cache: when the directory cannot be written (a read-only state dir, another
user's) or is not safe to use, the days are parsed and nothing is said."""

from __future__ import annotations

import hmac
import json
import os
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from recovery_cli.audit import (
    SUMMARY_DIR,
    SUMMARY_SUFFIX,
    AuditLog,
    Digester,
    Event,
    ReadStats,
    parse_line,
)
from recovery_cli.day_scan import day_records
from recovery_cli.errors import RecoveryError
from recovery_cli.handlers.util import private_dir_problem
from recovery_cli.outcomes import Change, change_of
from recovery_cli.statedir import NOFOLLOW, PRIVATE_FILE_MODE, private_subdir
from recovery_cli.step_stats import StepTally

VERSION = 2
MAX_SUMMARY_BYTES = 1 << 20  # a day's tally is a few hundred bytes; past this it is not kept
SETTLE_NS = 1_000_000_000
READ_FLAGS = os.O_RDONLY | NOFOLLOW
FINGERPRINT_FIELDS = ("size", "inode", "mtime_ns", "ctime_ns")
FIRST_LINE_BYTES = 1 << 16  # a record is far shorter


@dataclass(frozen=True)
class Window:
    """``ts`` from ``since`` to ``until`` (text comparison, as the trail's readers do)."""

    since: str | None
    until: str | None

    def holds(self, ts: str) -> bool:
        return (self.since is None or ts >= self.since) and (self.until is None or ts <= self.until)

    def misses(self, first: str, last: str) -> bool:
        """Whether no ``ts`` from ``first`` to ``last`` is inside."""
        return bool((self.since and last < self.since) or (self.until and first > self.until))


@dataclass(frozen=True)
class Fingerprint:
    size: int
    inode: int
    mtime_ns: int
    ctime_ns: int
    tail: str  # the digest of the last complete line

    @classmethod
    def of(cls, fd: int, audit: AuditLog) -> Fingerprint:
        info = os.fstat(fd)
        return cls(
            info.st_size, info.st_ino, info.st_mtime_ns, info.st_ctime_ns, audit.tail_digest(fd)
        )

    def to_json(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in FINGERPRINT_FIELDS}, "tail": self.tail}

    @classmethod
    def from_json(cls, data: object) -> Fingerprint | None:
        if not isinstance(data, dict) or set(data) != {*FINGERPRINT_FIELDS, "tail"}:
            return None
        if not all(type(data[name]) is int for name in FINGERPRINT_FIELDS):
            return None
        if type(data["tail"]) is not str:
            return None
        return cls(**data)


@dataclass(frozen=True)
class DaySummary:
    """What ``--stats`` needs of one complete day file."""

    day_file: str
    fingerprint: Fingerprint
    steps: StepTally
    first_ts: str | None  # the span of the steps' ts; None: the day has no steps
    last_ts: str | None
    corrupt_lines: int
    changes: tuple[Change, ...] = ()  # every lifecycle change of the day, in file order

    def inside(self, window: Window) -> StepTally | None:
        """The day's steps inside ``window``; None when the window cuts through them."""
        if self.first_ts is None or self.last_ts is None:
            return StepTally()
        if window.holds(self.first_ts) and window.holds(self.last_ts):
            return self.steps
        return StepTally() if window.misses(self.first_ts, self.last_ts) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "day_file": self.day_file,
            "file": self.fingerprint.to_json(),
            "steps": self.steps.to_json(),
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "corrupt_lines": self.corrupt_lines,
            "changes": [c.to_json() for c in self.changes],
        }

    def encoded(self, digester: Digester) -> bytes:
        body = self.to_json()
        return json.dumps({**body, "digest": digester.of(canonical(body))}).encode()

    @classmethod
    def decoded(cls, raw: bytes, digester: Digester) -> DaySummary | None:
        """The summary ``encoded`` wrote; None for anything else."""
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            return None
        if not isinstance(data, dict):
            return None
        digest = data.pop("digest", None)
        if not isinstance(digest, str) or not hmac.compare_digest(
            digest, digester.of(canonical(data))
        ):
            return None
        return cls.from_json(data)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DaySummary | None:
        fingerprint = Fingerprint.from_json(data.get("file"))
        steps = StepTally.from_json(data.get("steps"))
        first, last, corrupt = data.get("first_ts"), data.get("last_ts"), data.get("corrupt_lines")
        changes = _changes(data.get("changes"))
        if (
            changes is None
            or data.get("version") != VERSION
            or type(data.get("day_file")) is not str
            or fingerprint is None
            or steps is None
            or not (first is last is None or (type(first) is str and type(last) is str))
            or type(corrupt) is not int
            or corrupt < 0
        ):
            return None
        return cls(data["day_file"], fingerprint, steps, first, last, corrupt, changes)


def _changes(data: object) -> tuple[Change, ...] | None:
    if not isinstance(data, list):
        return None
    changes = tuple(Change.from_json(entry) for entry in data)
    return None if None in changes else changes  # type: ignore[return-value]


def canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def summary_name(day_file: str) -> str:
    return day_file.removesuffix(".jsonl") + SUMMARY_SUFFIX


class SummaryDir:
    """``audit/summaries/``, opened once and never through a symlink; every summary is read
    and written by name inside it. Writing is best effort."""

    def __init__(self, audit: AuditLog, settle_ns: int = SETTLE_NS) -> None:
        self.path = audit.directory / SUMMARY_DIR
        self.digester = audit.digester
        self.settle_ns = settle_ns
        self.fd: int | None = None
        self.unusable = False  # not safe or not possible: summaries are neither read nor kept
        self.wrote = False

    def load(self, day_file: str, fingerprint: Fingerprint) -> DaySummary | None:
        """The day's summary if it is sound and still matches the file."""
        directory = self._opened(create=False)
        if directory is None:
            return None
        try:
            raw = read_small(summary_name(day_file), directory)
        except OSError:
            return None
        summary = DaySummary.decoded(raw, self.digester) if raw is not None else None
        if summary is None or summary.day_file != day_file or summary.fingerprint != fingerprint:
            return None
        return summary

    def save(self, summary: DaySummary) -> None:
        payload = summary.encoded(self.digester)
        directory = self._opened(create=True) if len(payload) <= MAX_SUMMARY_BYTES else None
        if directory is None:
            return
        name = summary_name(summary.day_file)
        temp = f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            if self._written(temp, directory, payload, summary.fingerprint):
                os.replace(temp, name, src_dir_fd=directory, dst_dir_fd=directory)
                self.wrote = True
                return
        except OSError:
            pass
        with suppress(OSError):
            os.unlink(temp, dir_fd=directory)

    def _written(self, temp: str, directory: int, payload: bytes, day: Fingerprint) -> bool:
        """Write and fsync the temp file; whether the day file had settled by then (both
        times from the file system's own clock)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW
        fd = os.open(temp, flags, PRIVATE_FILE_MODE, dir_fd=directory)
        try:
            if os.write(fd, payload) != len(payload):
                return False
            os.fsync(fd)
            return os.fstat(fd).st_mtime_ns - day.ctime_ns >= self.settle_ns
        finally:
            os.close(fd)

    def _opened(self, create: bool) -> int | None:
        if self.fd is not None or self.unusable:
            return self.fd
        try:
            if create:
                private_subdir(self.path)
            elif private_dir_problem(self.path) is not None:
                self.unusable = True
                return None
            self.fd = os.open(self.path, READ_FLAGS | os.O_DIRECTORY)
        except FileNotFoundError:
            return None
        except (OSError, RecoveryError):
            self.unusable = True
        return self.fd

    def close(self) -> None:
        if self.fd is None:
            return
        with suppress(OSError):
            if self.wrote:  # the renames, durable
                os.fsync(self.fd)
        os.close(self.fd)
        self.fd = None


def read_small(name: str, directory: int) -> bytes | None:
    """The content of a regular file of at most ``MAX_SUMMARY_BYTES`` (None: not one)."""
    fd = os.open(name, READ_FLAGS | os.O_NONBLOCK, dir_fd=directory)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, size = [], 0
        while chunk := os.read(fd, MAX_SUMMARY_BYTES + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_SUMMARY_BYTES:
                return None
        return b"".join(chunks)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class WindowCounts:
    steps: StepTally  # the steps inside the window
    changes: list[Change]  # the lifecycle changes from the window's start on, as written


def window_steps(
    audit: AuditLog, since: str | None, until: str | None, settle_ns: int = SETTLE_NS
) -> StepTally:
    """The step records dated from ``since`` to ``until`` in the day files that can hold
    them: what counting ``audit.read_forward(since)`` up to ``until`` gives (skipped lines
    are counted in ``audit.stats`` the same way), through summaries where they answer."""
    return window_counts(audit, since, until, settle_ns).steps


def window_counts(
    audit: AuditLog, since: str | None, until: str | None, settle_ns: int = SETTLE_NS
) -> WindowCounts:
    """``window_steps``, and the lifecycle changes from ``since`` on (later than ``until``
    too: they tell the state a component held through the window), in one pass."""
    files = audit.files()
    newest = files[-1] if files else None
    window = Window(since, until)
    total, changes = StepTally(), list[Change]()
    with summaries_of(audit, settle_ns) as summaries:
        for path in files:
            if since and path.name[:10] < since[:10]:
                continue
            try:
                fd = os.open(path, READ_FLAGS)
            except FileNotFoundError:  # pruned since it was listed
                continue
            try:
                steps, day = day_counts(fd, path.name, path != newest, audit, window, summaries)
            finally:
                os.close(fd)
            total.merge(steps)
            changes.extend(c for c in day if since is None or c.ts >= since)
    return WindowCounts(total, changes)  # as written: a clock stepped back keeps their order


def first_ts(audit: AuditLog) -> str | None:
    """The ``ts`` of the trail's first record: where the oldest day file starts (read from
    its first line when that holds a record, else from its records)."""
    for path in audit.files():
        try:
            fd = os.open(path, READ_FLAGS)
        except FileNotFoundError:
            continue
        try:
            head = os.pread(fd, FIRST_LINE_BYTES, 0)
            line = head[: head.find(b"\n") + 1] if b"\n" in head else b""
            record = parse_line(line, ReadStats()) if line else None
            if record is None:
                record = next(day_records(fd, ReadStats()), None)
        finally:
            os.close(fd)
        if record is not None:
            return str(record["ts"])
    return None


@contextmanager
def summaries_of(audit: AuditLog, settle_ns: int) -> Iterator[SummaryDir]:
    summaries = SummaryDir(audit, settle_ns)
    try:
        yield summaries
    finally:
        summaries.close()


def day_counts(
    fd: int, name: str, complete: bool, audit: AuditLog, window: Window, summaries: SummaryDir
) -> tuple[StepTally, tuple[Change, ...]]:
    """One day file's steps inside ``window`` and all its lifecycle changes: from its
    summary when that answers, else parsed (and, for a complete day, its summary rebuilt)."""
    fingerprint = Fingerprint.of(fd, audit) if complete else None
    summary = summaries.load(name, fingerprint) if fingerprint else None
    inside = summary.inside(window) if summary else None
    if summary is not None and inside is not None:
        audit.stats.corrupt_lines += summary.corrupt_lines
        return inside, summary.changes
    parsed = parse_day(fd, window)
    audit.stats.corrupt_lines += parsed.corrupt_lines
    if summary is None and fingerprint and Fingerprint.of(fd, audit) == fingerprint:
        summaries.save(parsed.summary(name, fingerprint))
    return parsed.inside, parsed.changes


@dataclass(frozen=True)
class ParsedDay:
    inside: StepTally  # the steps inside the window
    outside: StepTally
    first_ts: str | None
    last_ts: str | None
    corrupt_lines: int
    changes: tuple[Change, ...]

    def summary(self, name: str, fingerprint: Fingerprint) -> DaySummary:
        whole = StepTally().merge(self.inside).merge(self.outside)
        return DaySummary(
            name,
            fingerprint,
            whole,
            self.first_ts,
            self.last_ts,
            self.corrupt_lines,
            self.changes,
        )


def parse_day(fd: int, window: Window) -> ParsedDay:
    """Every step of the open day file, counted once, inside or outside ``window``, and
    every lifecycle change."""
    stats = ReadStats()
    steps, changes = [], []
    for record in day_records(fd, stats):
        event = record.get("event")
        if event == Event.STEP:
            steps.append(record)
        elif event == Event.STATE_CHANGED and (change := change_of(record)) is not None:
            changes.append(change)
    stamps = [r["ts"] for r in steps]
    first, last = (min(stamps), max(stamps)) if stamps else (None, None)
    if first is None or last is None or (window.holds(first) and window.holds(last)):
        inside, outside = steps, []
    elif window.misses(first, last):
        inside, outside = [], steps
    else:
        inside = [r for r in steps if window.holds(r["ts"])]
        outside = [r for r in steps if not window.holds(r["ts"])]
    return ParsedDay(
        StepTally().add_all(inside),
        StepTally().add_all(outside),
        first,
        last,
        stats.corrupt_lines,
        tuple(changes),
    )
