"""flock-based locks (see the reference, section 2.1).

The state lock is a flock on the state directory itself, which cannot be deleted while it
holds files. Component locks are files in ``locks/`` that the tool never deletes; if someone
does, a lock is only taken once the locked descriptor is still the file at the path."""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

from recovery_cli.errors import StateError
from recovery_cli.statedir import open_private

POLL_INTERVAL = 0.01


def poll(attempt: Callable[[], bool], wait: float, interval: float) -> tuple[bool, float]:
    """Call ``attempt`` until it succeeds or ``wait`` seconds pass: (succeeded, seconds
    waited)."""
    start = time.monotonic()
    while True:
        if attempt():
            return True, time.monotonic() - start
        if time.monotonic() - start >= wait:
            return False, time.monotonic() - start
        time.sleep(interval)


class FileLock:
    """An exclusive flock on ``path``, waited for up to ``wait`` seconds.

    Usage: ``with FileLock(path) as lock: lock.acquire(wait)``; ``acquired`` and ``waited``
    say what happened. Released on exit (and by the kernel if the process dies)."""

    def __init__(self, path: Path, directory: bool = False) -> None:
        self.path = path
        self.directory = directory  # lock the directory itself: it cannot be deleted while used
        self.fd: int | None = None
        self.acquired = False
        self.waited = 0.0

    def __enter__(self) -> FileLock:
        self.fd = self._open()
        return self

    def _open(self) -> int:
        flags = os.O_RDONLY | os.O_DIRECTORY if self.directory else os.O_RDWR | os.O_CREAT
        try:
            return open_private(self.path, flags)
        except OSError as exc:
            raise StateError(f"cannot open lock file {self.path}: {exc.strerror}") from exc

    def acquire(self, wait: float) -> bool:
        assert self.fd is not None
        self.acquired, self.waited = poll(self._try_lock, wait, POLL_INTERVAL)
        return self.acquired

    def _try_lock(self) -> bool:
        assert self.fd is not None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise StateError(f"cannot lock {self.path}: {exc.strerror}") from exc
            return False
        if self._still_the_file():
            return True
        os.close(self.fd)  # we locked a deleted or replaced file: lock the one at the path
        self.fd = self._open()
        return False

    def _still_the_file(self) -> bool:
        assert self.fd is not None
        held = os.fstat(self.fd)
        try:
            current = os.lstat(self.path)
        except FileNotFoundError:
            return False
        return (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino)

    def __exit__(self, *exc_info: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None
            self.acquired = False
