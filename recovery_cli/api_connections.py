"""Connections the API server holds: bounded in number and in idle time, so a client that
opens sockets and never finishes a request cannot exhaust the process's file descriptors
(which ``watch``'s own loop needs) or hold them forever.

- a connection that has no request in progress for ``IDLE_SECONDS`` (a request's headers
  never finished, or a keep-alive connection left open) is closed;
- past ``MAX_CONNECTIONS`` open at once, a new connection is closed at once;
- the soft limit on open files is raised to the hard limit at start."""

from __future__ import annotations

import contextlib
import resource
from typing import Any

IDLE_SECONDS = 10.0
MAX_CONNECTIONS = 256


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def guarded_protocol() -> type[Any]:
    """uvicorn's h11 protocol with the limits above."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11(H11Protocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > MAX_CONNECTIONS:
                transport.close()
                return
            self._idle_timer = self.loop.call_later(IDLE_SECONDS, self._close_if_idle)

        def _close_if_idle(self) -> None:
            busy = self.cycle is not None and not self.cycle.response_complete
            if busy:
                self._idle_timer = self.loop.call_later(IDLE_SECONDS, self._close_if_idle)
            elif not self.transport.is_closing():
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            timer = getattr(self, "_idle_timer", None)
            if timer is not None:
                timer.cancel()
            super().connection_lost(exc)

    return GuardedH11
