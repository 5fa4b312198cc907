"""Helpers every handler and the core share: bounded text, private directories, durable
renames, and commands run with a timeout and a cap on their output."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

DETAIL_LIMIT = 2000
OUTPUT_LIMIT = 64 * 1024  # bytes of a command's output kept; the rest is read and dropped
KILL_GRACE_SECONDS = 1.0  # SIGTERM, then this long, then SIGKILL
AFTER_KILL_SECONDS = 2.0  # how long a killed command's pipe is drained and its exit awaited
# UTC, microseconds, a fixed width: timestamps sort as text (the audit window relies on it)
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class UnsafeDirectory(OSError):
    """A directory the tool would keep its files in is a symlink, not a directory,
    someone else's, or writable by others."""


def private_dir_problem(path: Path) -> str | None:
    """Why ``path`` is not a directory only root or we can change (``None``: it is)."""
    import os
    import stat

    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return f"{path} is a symlink; refusing to follow it"
    if not stat.S_ISDIR(info.st_mode):
        return f"{path} is not a directory"
    if info.st_uid not in (0, os.geteuid()):
        return (
            f"{path} is owned by uid {info.st_uid}, not by root or by us (uid {os.geteuid()}); "
            "use a directory you own (e.g. mkdir -m 700)"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (
            f"{path} is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"fix it with: chmod go-w {path}"
        )
    return None


def private_dir(path: Path, parents: bool = False) -> Path:
    """A directory for the tool's own files: created 0700 when missing. One that exists
    keeps its mode (the tool never changes a directory it did not create); a symlink, a
    non-directory or someone else's directory raises ``UnsafeDirectory``."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=parents)
    problem = private_dir_problem(path)
    if problem is not None:
        raise UnsafeDirectory(problem)
    return path


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (fsync of the file is not enough)."""
    import os

    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def trim(text: str, limit: int = DETAIL_LIMIT) -> str:
    """Bound text that goes into audit records; keep the head, which says what happened."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return text[: limit - 15] + " …[truncated]"


def format_ts(epoch: float) -> str:
    """The one text form of a time the tool writes (RFC 3339, UTC):
    ``2026-11-22T10:00:00.000000Z``."""
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime(TS_FORMAT)


def file_stamp(epoch: float) -> str:
    """The one form of a time in a file or directory name: ``20261122T100000000000Z``
    (UTC, microseconds, no colons; names sort in time order)."""
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")


@dataclass(frozen=True)
class CommandOutcome:
    returncode: int | None
    output: str
    timed_out: bool
    missing: bool = False

    @property
    def first_line(self) -> str:
        for line in self.output.splitlines():
            if line.strip():
                return line.strip()
        return ""


def run_command(
    argv: Sequence[str],
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> CommandOutcome:
    """Run an argv list without a shell, with a timeout, capturing stdout+stderr (at most
    ``OUTPUT_LIMIT`` bytes of it).

    The child gets its own session so that a timeout kills the whole process group; while it
    runs it is registered, so that a run that gives up on this thread can end it too."""
    deadline = time.monotonic() + timeout
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        return CommandOutcome(None, f"{argv[0]}: {exc.strerror}", False, missing=True)
    _RUNNING.add(proc)
    try:
        return _collect(proc, deadline)
    except BaseException:  # Ctrl-C or SIGTERM in the thread that waits: the child goes too
        _kill_group(proc)
        raise
    finally:
        _RUNNING.discard(proc)
        if proc.stdout is not None:
            proc.stdout.close()


def _collect(proc: subprocess.Popen[bytes], deadline: float) -> CommandOutcome:
    assert proc.stdout is not None
    output, eof = _read_capped(proc.stdout, deadline, OUTPUT_LIMIT)
    if eof and _exited(proc, deadline - time.monotonic()):
        return CommandOutcome(proc.returncode, output.decode(errors="replace"), False)
    _kill_group(proc)
    # whatever the killed group still wrote; a grandchild that left the group may hold the
    # pipe open, hence the bound
    rest, _ = _read_capped(
        proc.stdout, time.monotonic() + AFTER_KILL_SECONDS, OUTPUT_LIMIT - len(output)
    )
    _exited(proc, AFTER_KILL_SECONDS)
    return CommandOutcome(None, (output + rest).decode(errors="replace"), True)


def _read_capped(stream: IO[bytes], deadline: float, limit: int) -> tuple[bytes, bool]:
    """Read ``stream`` until EOF (True) or ``deadline`` (False), keeping the first ``limit``
    bytes. The rest is read and dropped: the child must never block on a full pipe, and its
    flood of output must not become our memory."""
    kept = bytearray()
    fd = stream.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                continue
            chunk = os.read(fd, OUTPUT_LIMIT)
            if not chunk:
                return bytes(kept), True
            kept += chunk[: max(0, limit - len(kept))]
    return bytes(kept), False


def _exited(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait (with a timeout, so another thread's ``poll`` is never locked out) for the exit."""
    try:
        proc.wait(timeout=max(0.0, timeout))
    except subprocess.TimeoutExpired:
        return False
    return True


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    _signal_group(proc.pid, signal.SIGKILL)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


class _RunningCommands:
    """The commands ``run_command`` has started and not yet reaped, with the thread that
    started each. Each leads its own process group, out of reach of the terminal's Ctrl-C,
    so a run that gives up on a thread (timeout, Ctrl-C, SIGTERM) must end them itself."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: dict[int, tuple[int, subprocess.Popen[bytes]]] = {}  # pid -> (thread, proc)

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs[proc.pid] = (threading.get_ident(), proc)

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.pop(proc.pid, None)

    def started_by(self, thread: int | None) -> list[subprocess.Popen[bytes]]:
        with self._lock:
            return [p for t, p in self._procs.values() if thread is None or t == thread]


_RUNNING = _RunningCommands()


def end_commands(thread: int | None = None, grace: float = KILL_GRACE_SECONDS) -> int:
    """End the process group of every running command that ``thread`` started (all of them
    when ``None``): SIGTERM, up to ``grace`` seconds for the leaders to exit, then SIGKILL
    for whatever is left. Returns how many groups were signalled."""
    procs = _RUNNING.started_by(thread)
    try:
        for proc in procs:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(proc.poll() is None for proc in procs) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:  # a second Ctrl-C during the grace must not spare them
        for proc in procs:
            _signal_group(proc.pid, signal.SIGKILL)
    return len(procs)
