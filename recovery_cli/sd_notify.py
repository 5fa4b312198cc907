"""The systemd notify protocol, without a library: one datagram per message to the unix
socket ``$NOTIFY_SOCKET`` names (a leading ``@`` is the abstract namespace). Not under
systemd (no variable), every call does nothing; a send that fails is never fatal."""

from __future__ import annotations

import socket
from collections.abc import Mapping


class Notifier:
    def __init__(self, environ: Mapping[str, str]) -> None:
        address = environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_seconds = _watchdog_seconds(environ)

    @property
    def active(self) -> bool:
        return bool(self.address)

    def send(self, *lines: str) -> bool:
        """``READY=1``, ``STATUS=...``, ``WATCHDOG=1``, ``STOPPING=1``, in one datagram."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)  # a full queue drops a message, never stops the watch
                sock.sendto("\n".join(lines).encode(), self.address)
        except OSError:
            return False
        return True


def _watchdog_seconds(environ: Mapping[str, str]) -> float | None:
    """Half of ``WATCHDOG_USEC`` (systemd's advice), when the watchdog is ours."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = environ.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid.isdigit() and int(pid) != _own_pid()):
        return None
    return usec / 2 / 1_000_000


def _own_pid() -> int:
    import os

    return os.getpid()
