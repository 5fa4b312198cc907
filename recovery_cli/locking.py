"""flock-based locks on files that are never deleted (see the reference, section 2.1)."""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from recovery_cli.errors import StateError

POLL_INTERVAL = 0.01


class FileLock:
    """An exclusive flock on ``path``, waited for up to ``wait`` seconds.

    Usage: ``with FileLock(path) as lock: lock.acquire(wait)``; ``acquired`` and ``waited``
    say what happened. Released on exit (and by the kernel if the process dies)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.acquired = False
        self.waited = 0.0

    def __enter__(self) -> FileLock:
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            self.fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise StateError(f"cannot open lock file {self.path}: {exc.strerror}") from exc
        return self

    def acquire(self, wait: float) -> bool:
        assert self.fd is not None
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise StateError(f"cannot lock {self.path}: {exc.strerror}") from exc
            else:
                self.acquired = True
                self.waited = time.monotonic() - start
                return True
            if time.monotonic() - start >= wait:
                self.waited = time.monotonic() - start
                return False
            time.sleep(POLL_INTERVAL)

    def __exit__(self, *exc_info: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None
            self.acquired = False
