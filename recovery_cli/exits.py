"""Process death without polling: a pidfd (``os.pidfd_open``, Linux 5.3+) per watched
component, readable the moment that process exits. ``watch`` waits on them between runs, so a
killed server is run (probed, recovered) at once instead of at its next interval; polling
stays for hangs and for components whose process is not known.

Where the pid comes from: the component's ``service.pidfile``. A pidfd names one process for
good (no PID reuse once it is open), so the pidfile is read again after each run."""

from __future__ import annotations

import contextlib
import os
import selectors
import stat
from pathlib import Path

MAX_PIDFILE_BYTES = 64


class ExitWatch:
    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.fds: dict[str, int] = {}

    @property
    def available(self) -> bool:
        return hasattr(os, "pidfd_open")

    def track(self, name: str, pidfile: str | None) -> int | None:
        """Watch the process ``pidfile`` names (dropping the one watched before); its pid,
        or None when there is none to watch."""
        self.forget(name)
        pid = read_pid(pidfile) if pidfile and self.available else None
        if pid is None:
            return None
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return None  # gone already: the next run sees it
        if _is_zombie(pid):
            os.close(fd)
            return None
        self.fds[name] = fd
        self.selector.register(fd, selectors.EVENT_READ, name)
        return pid

    def forget(self, name: str) -> None:
        fd = self.fds.pop(name, None)
        if fd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(fd)
            os.close(fd)

    def wait(self, timeout: float) -> list[str]:
        """Sleep up to ``timeout`` seconds; the components whose process exited."""
        if not self.fds:
            import time

            time.sleep(timeout)
            return []
        ended = [key.data for key, _ in self.selector.select(timeout)]
        for name in ended:
            self.forget(name)
        return ended

    def close(self) -> None:
        for name in list(self.fds):
            self.forget(name)
        self.selector.close()


def read_pid(pidfile: str) -> int | None:
    """The pid a pidfile names (a regular file, a positive number), else None."""
    try:
        fd = os.open(pidfile, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            text = os.read(fd, MAX_PIDFILE_BYTES).decode("ascii", "replace").split()
        finally:
            os.close(fd)
        pid = int(text[0]) if text else 0
    except (OSError, ValueError):
        return None
    return pid if pid > 1 else None


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"
