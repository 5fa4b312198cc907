"""Safe removal of stale files under allow-listed roots (the ``disk_cleanup`` strategy).

The walk never follows a symlink, in the last component or any parent: the root is
opened one component at a time from ``/`` with ``O_NOFOLLOW|O_DIRECTORY``, every directory
below it is opened relative to its parent's descriptor and re-checked against the entry it
was listed as, and files are removed with ``unlink(name, dir_fd=...)``, so no path string
is ever resolved again after the walk started. It stays on the root's filesystem and
mount (``st_dev`` and the mount id), so a bind or tmpfs mount inside a root is skipped.
A root under a directory that someone else can write (other than a root-owned sticky
directory such as ``/tmp``) is refused, because its owner could swap the root away.
Files that any process holds open or locked are never touched.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
LOCK_PATTERNS = ("*.lock", "*.pid")
MAX_LISTED = 500  # paths kept in the audit record; the counts always cover everything


class UnsafeRoot(Exception):
    """The configured root cannot be cleaned safely; the message says why."""


@dataclass(frozen=True)
class CleanupRules:
    patterns: tuple[str, ...]
    min_age_seconds: float
    max_bytes: int
    lock_min_age_seconds: float = 3600.0
    max_depth: int = 32
    quarantine_dir: str | None = None


@dataclass(frozen=True)
class Removal:
    path: str
    size: int


@dataclass
class CleanupReport:
    dry_run: bool
    removed: list[Removal] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    refused: dict[str, str] = field(default_factory=dict)
    budget_reached: bool = False
    out_of_time: bool = False

    @property
    def bytes_freed(self) -> int:
        return sum(r.size for r in self.removed)

    def as_data(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "removed_count": len(self.removed),
            "bytes_freed": self.bytes_freed,
            "removed": [{"path": r.path, "bytes": r.size} for r in self.removed[:MAX_LISTED]],
            "removed_listed": min(len(self.removed), MAX_LISTED),
            "skipped": dict(self.skipped),
            "refused_roots": dict(self.refused),
            "budget_reached": self.budget_reached,
            "out_of_time": self.out_of_time,
        }


# --------------------------------------------------------------------------- root


def _parent_is_safe(st: os.stat_result) -> bool:
    """Only root (or we) may replace entries of a parent directory; a root-owned sticky
    directory (``/tmp``) is fine because others cannot rename what they do not own."""
    if st.st_uid not in (0, os.geteuid()):
        return False
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) == 0:
        return True
    return bool(st.st_mode & stat.S_ISVTX) and st.st_uid == 0


def open_root(root: str) -> int:
    """A descriptor for ``root``, reached from ``/`` without following any symlink."""
    if not os.path.isabs(root) or os.path.normpath(root) != root.rstrip("/") or root == "/":
        raise UnsafeRoot(f"{root!r} must be an absolute, normalised path other than /")
    fd = os.open("/", DIR_FLAGS)
    for part in Path(root).parts[1:]:
        fd = _step_into(fd, part, root)  # closes the parent, also when it raises
    owner = os.fstat(fd).st_uid
    if owner not in (0, os.geteuid()):
        os.close(fd)
        raise UnsafeRoot(f"{root} is owned by uid {owner}, not by root")
    return fd


def _step_into(parent_fd: int, part: str, root: str) -> int:
    """Open ``part`` below ``parent_fd`` (closing the parent), refusing symlinks."""
    try:
        if not _parent_is_safe(os.fstat(parent_fd)):
            raise UnsafeRoot(f"{root}: a parent of {part!r} is writable by others")
        listed = os.stat(part, dir_fd=parent_fd, follow_symlinks=False)
        if stat.S_ISLNK(listed.st_mode):
            raise UnsafeRoot(f"{root}: {part!r} is a symlink")
        if not stat.S_ISDIR(listed.st_mode):
            raise UnsafeRoot(f"{root}: {part!r} is not a directory")
        child = os.open(part, DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError as exc:
        raise UnsafeRoot(f"{root}: {part!r} does not exist") from exc
    except OSError as exc:
        raise UnsafeRoot(f"{root}: cannot open {part!r}: {exc.strerror}") from exc
    finally:
        os.close(parent_fd)
    if not os.path.samestat(listed, os.fstat(child)):
        os.close(child)
        raise UnsafeRoot(f"{root}: {part!r} changed while it was opened")
    return child


def mount_id(fd: int) -> int | None:
    """The mount a descriptor lives on (``/proc/self/fdinfo``); ``None`` without /proc."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as info:
            for line in info:
                if line.startswith("mnt_id:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# --------------------------------------------------------------------------- busy files


def busy_inodes() -> set[tuple[int, int]]:
    """(st_dev, st_ino) of every file some process holds open or locked."""
    busy = _open_inodes()
    busy |= _locked_inodes()
    return busy


def _open_inodes() -> set[tuple[int, int]]:
    found: set[tuple[int, int]] = set()
    for pid in _pids():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            found.add((st.st_dev, st.st_ino))
    return found


def _pids() -> list[str]:
    try:
        return [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def _locked_inodes() -> set[tuple[int, int]]:
    """Inodes in ``/proc/locks`` (``MAJOR:MINOR:INODE``, major and minor in hex): catches
    holders whose ``/proc/PID/fd`` we could not read."""
    found: set[tuple[int, int]] = set()
    try:
        with open("/proc/locks", encoding="ascii") as locks:
            lines = locks.readlines()
    except OSError:
        return found
    for line in lines:
        for token in line.split():
            parts = token.split(":")
            if len(parts) == 3 and all(parts):
                try:
                    dev = os.makedev(int(parts[0], 16), int(parts[1], 16))
                    found.add((dev, int(parts[2])))
                except ValueError:
                    continue
    return found


# --------------------------------------------------------------------------- walk


@dataclass
class _Walk:
    rules: CleanupRules
    report: CleanupReport
    busy: set[tuple[int, int]]
    deadline: float
    now: float
    root_dev: int = 0
    root_mount: int | None = None
    quarantine_fd: int | None = None
    counter: int = 0


def clean(
    roots: list[str],
    rules: CleanupRules,
    *,
    dry_run: bool,
    deadline: float,
    now: float,
) -> CleanupReport:
    """Remove (or quarantine, or with ``dry_run`` only list) matching files under ``roots``."""
    report = CleanupReport(dry_run=dry_run)
    walk = _Walk(rules, report, busy_inodes(), deadline, now)
    if rules.quarantine_dir and not dry_run:
        try:
            walk.quarantine_fd = _open_quarantine(rules.quarantine_dir)
        except UnsafeRoot as exc:
            report.refused["quarantine"] = str(exc)
            return report
    try:
        for root in roots:
            _clean_root(walk, root)
    finally:
        if walk.quarantine_fd is not None:
            os.close(walk.quarantine_fd)
    return report


def _open_quarantine(path: str) -> int:
    """The quarantine directory, created 0700 if missing, reached as safely as a root."""
    parent, name = os.path.split(path.rstrip("/"))
    parent_fd = open_root(parent) if parent != "/" else os.open("/", DIR_FLAGS)
    try:
        os.mkdir(name, 0o700, dir_fd=parent_fd)
    except FileExistsError:
        pass
    except OSError as exc:
        os.close(parent_fd)
        raise UnsafeRoot(f"cannot create quarantine {path}: {exc.strerror}") from exc
    return _step_into(parent_fd, name, path)


def _clean_root(walk: _Walk, root: str) -> None:
    try:
        fd = open_root(root)
    except UnsafeRoot as exc:
        walk.report.refused[root] = str(exc)
        return
    st = os.fstat(fd)
    walk.root_dev, walk.root_mount = st.st_dev, mount_id(fd)
    stack = [(fd, root, 0)]
    while stack:
        dir_fd, path, depth = stack.pop()
        try:
            stack += _clean_dir(walk, dir_fd, path, depth)
        finally:
            os.close(dir_fd)


def _clean_dir(walk: _Walk, dir_fd: int, path: str, depth: int) -> list[tuple[int, str, int]]:
    """Handle one directory's entries; return the subdirectories to visit (opened)."""
    subdirs: list[tuple[int, str, int]] = []
    try:
        with os.scandir(dir_fd) as entries:
            names = [entry.name for entry in entries]
    except OSError:
        walk.report.skipped["unreadable directory"] += 1
        return subdirs
    for name in names:
        if time.monotonic() >= walk.deadline:
            walk.report.out_of_time = True
            break
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            continue  # gone since the listing
        if stat.S_ISDIR(st.st_mode):
            child = _open_subdir(walk, dir_fd, name, st, depth)
            if child is not None:
                subdirs.append((child, f"{path}/{name}", depth + 1))
        elif stat.S_ISREG(st.st_mode):
            _consider_file(walk, dir_fd, name, f"{path}/{name}", st)
        else:
            walk.report.skipped[
                "symlink" if stat.S_ISLNK(st.st_mode) else "not a regular file"
            ] += 1
    return subdirs


def _open_subdir(
    walk: _Walk, dir_fd: int, name: str, listed: os.stat_result, depth: int
) -> int | None:
    skipped = walk.report.skipped
    if listed.st_dev != walk.root_dev:
        skipped["other filesystem"] += 1
        return None
    if depth + 1 > walk.rules.max_depth:
        skipped["too deep"] += 1
        return None
    try:
        child = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError:
        skipped["changed during walk"] += 1  # e.g. swapped for a symlink: ELOOP/ENOTDIR
        return None
    opened = os.fstat(child)
    if not os.path.samestat(listed, opened) or opened.st_dev != walk.root_dev:
        os.close(child)
        skipped["changed during walk"] += 1
        return None
    if walk.root_mount is not None and mount_id(child) != walk.root_mount:
        os.close(child)
        skipped["other mount"] += 1
        return None
    if walk.quarantine_fd is not None and os.path.samestat(opened, os.fstat(walk.quarantine_fd)):
        os.close(child)  # a quarantine inside a root: never clean what we set aside
        skipped["quarantine"] += 1
        return None
    return child


def _skip_reason(walk: _Walk, name: str, st: os.stat_result) -> str | None:
    rules = walk.rules
    if not any(fnmatch.fnmatchcase(name, pattern) for pattern in rules.patterns):
        return "no pattern matched"
    if st.st_dev != walk.root_dev:
        return "other filesystem"
    if st.st_nlink > 1:
        return "hard-linked"  # another name keeps it (and its bytes) alive
    is_lock = any(fnmatch.fnmatchcase(name, pattern) for pattern in LOCK_PATTERNS)
    min_age = max(rules.min_age_seconds, rules.lock_min_age_seconds if is_lock else 0.0)
    if walk.now - st.st_mtime < min_age:
        return "too young"
    if (st.st_dev, st.st_ino) in walk.busy:
        return "open or locked by a process"
    if walk.report.bytes_freed + st.st_size > rules.max_bytes:
        return "over the byte budget"
    return None


def _consider_file(walk: _Walk, dir_fd: int, name: str, path: str, st: os.stat_result) -> None:
    reason = _skip_reason(walk, name, st)
    if reason is not None:
        walk.report.skipped[reason] += 1
        walk.report.budget_reached |= reason == "over the byte budget"
        return
    if walk.report.dry_run:
        walk.report.removed.append(Removal(path, st.st_size))
        return
    try:
        again = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not os.path.samestat(st, again) or not stat.S_ISREG(again.st_mode):
            walk.report.skipped["changed during walk"] += 1
            return
        _remove(walk, dir_fd, name)
    except OSError as exc:
        walk.report.skipped[f"cannot remove: {exc.strerror}"] += 1
        return
    walk.report.removed.append(Removal(path, st.st_size))


def _remove(walk: _Walk, dir_fd: int, name: str) -> None:
    if walk.quarantine_fd is None:
        os.unlink(name, dir_fd=dir_fd)
        return
    walk.counter += 1
    target = f"{int(walk.now)}-{os.getpid()}-{walk.counter}-{name}"
    # rename(2) never crosses filesystems (EXDEV): a quarantine elsewhere skips the file.
    os.rename(name, target, src_dir_fd=dir_fd, dst_dir_fd=walk.quarantine_fd)
