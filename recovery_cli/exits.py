"""Process death without polling: pidfds (``os.pidfd_open``, Linux 5.3+) on each watched
component's processes, readable the moment one exits. ``watch`` waits on them between runs, so
a killed server is run (probed, recovered) at once instead of at its next interval; polling
stays for hangs and for components whose processes are not known.

Where the pids come from (read again after every run: a pidfd names one process for good):
the ``service:`` block's ``pidfile``; systemd's ``MainPID`` of its ``unit``; Docker's
``State.Pid`` of its ``container`` (a local engine only); the pidfiles of a ``kind: system``
component's ``settings.processes``."""

from __future__ import annotations

import contextlib
import os
import selectors
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path

from recovery_cli.config import ComponentConfig

MAX_PIDFILE_BYTES = 64
PID_MAX_LIMIT = 4_194_304  # the kernel's ceiling for pid_max (2**22)
SYSTEMCTL_TIMEOUT = 2.0


class ExitWatch:
    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.fds: dict[str, list[int]] = {}

    @property
    def available(self) -> bool:
        return hasattr(os, "pidfd_open")

    def track(self, name: str, pids: list[int]) -> list[int]:
        """Watch ``pids`` for ``name`` (dropping those watched before); the pids watched."""
        self.forget(name)
        watched: list[int] = []
        for pid in pids if self.available else ():
            try:
                fd = os.pidfd_open(pid)
            except (OSError, OverflowError):
                continue  # gone already (or no pid at all): the next run sees it
            if _is_zombie(pid):
                os.close(fd)
                continue
            self.fds.setdefault(name, []).append(fd)
            self.selector.register(fd, selectors.EVENT_READ, name)
            watched.append(pid)
        return watched

    def forget(self, name: str) -> None:
        for fd in self.fds.pop(name, []):
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(fd)
            os.close(fd)

    def wait(self, timeout: float) -> list[str]:
        """Sleep up to ``timeout`` seconds; the components one of whose processes exited."""
        if not self.fds:
            import time

            time.sleep(timeout)
            return []
        ended = sorted({key.data for key, _ in self.selector.select(timeout)})
        for name in ended:
            self.forget(name)
        return ended

    def close(self) -> None:
        for name in list(self.fds):
            self.forget(name)
        self.selector.close()


def component_pids(component: ComponentConfig, environ: Mapping[str, str]) -> list[int]:
    """The processes whose exit means the component is down, as far as the config tells."""
    pids: list[int] = []
    service = component.service
    if service is not None and service.pidfile:
        pids.append(read_pid(service.pidfile) or 0)
    if service is not None and service.method == "systemd" and service.unit:
        pids.append(systemd_main_pid(service.unit, environ) or 0)
    if service is not None and service.method == "docker":
        from recovery_cli.service import docker_main_pid

        pids.append(docker_main_pid(service, environ) or 0)
    if component.kind == "system":
        for entry in component.settings.get("processes") or ():
            if isinstance(entry, Mapping) and isinstance(entry.get("pidfile"), str):
                pids.append(read_pid(entry["pidfile"]) or 0)
    return sorted({p for p in pids if 1 < p <= PID_MAX_LIMIT})


def systemd_main_pid(unit: str, environ: Mapping[str, str]) -> int | None:
    """``systemctl show --property MainPID --value UNIT``; None when not running."""
    try:
        done = subprocess.run(
            ["systemctl", "show", "--property", "MainPID", "--value", unit],
            capture_output=True,
            text=True,
            timeout=SYSTEMCTL_TIMEOUT,
            env=dict(environ),
            check=False,
        )
        pid = int(done.stdout.strip() or 0)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    return pid if done.returncode == 0 and 1 < pid <= PID_MAX_LIMIT else None


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
    return pid if 1 < pid <= PID_MAX_LIMIT else None


def _is_zombie(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return status.rsplit(")", 1)[1].split()[0] == "Z"
