"""Connections the API server holds: bounded in number and in idle time, so a client that
opens sockets and never finishes a request cannot exhaust the process's file descriptors
(which ``watch``'s own loop needs) or hold them forever.

- a connection that has no request in progress for ``IDLE_SECONDS`` (a request's headers
  never finished, or a keep-alive connection left open) is closed;
- past ``MAX_CONNECTIONS`` open at once, a new connection is closed at once;
- past ``MAX_CALLS`` requests in progress at once, a new one is answered 503 at once; a
  connection open without a request counts for nothing there, so sockets held open by one
  client do not turn every other caller away;
- the soft limit on open files is raised to the hard limit at start."""

from __future__ import annotations

import contextlib
import json
import resource
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

IDLE_SECONDS = 10.0
MAX_CONNECTIONS = 256
MAX_CALLS = 64

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

BUSY_BODY = json.dumps({"error": f"more than {MAX_CALLS} calls in progress; retry"}).encode()


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


class CallLimit:
    """The ASGI app behind it, with at most ``limit`` HTTP requests in progress at once.

    uvicorn's own ``limit_concurrency`` also counts open connections, so a client holding
    that many idle sockets would have every other call refused: this counts calls only. The
    count lives on the server's event loop, so it needs no lock."""

    def __init__(self, app: Asgi, limit: int = MAX_CALLS) -> None:
        self.app = app
        self.limit = limit
        self.in_progress = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_progress >= self.limit:
            await _busy(send)
            return
        self.in_progress += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_progress -= 1


async def _busy(send: Send) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BUSY_BODY)).encode()),
        (b"retry-after", b"1"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": BUSY_BODY})
