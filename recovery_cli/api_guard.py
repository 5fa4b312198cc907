"""What every HTTP request passes before any route sees it (plain ASGI, no framework): the
caller's token and role, decided from the method and path alone, and the body, read whole
up to ``MAX_BODY_BYTES`` (413 past it, declared or streamed). So an unauthenticated caller
learns nothing from how a body is parsed, and no route reads an unbounded body."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from recovery_cli.api_auth import Denied, Gate

MAX_BODY_BYTES = 1024 * 1024
OPEN_PATHS = frozenset({"/healthz", "/openapi.json"})
RECOVER_ROUTES = (
    re.compile(r"^/api/v1/components/[^/]+/recover$"),
    re.compile(r"^/api/v1/alertmanager$"),
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def role_for(method: str, path: str) -> str | None:
    """The role a request needs: none for the health check and the schema, ``read`` for
    reads, ``recover`` to recover (and for the Alertmanager receiver), ``admin`` for every
    other change (disable, enable, approvals)."""
    if path in OPEN_PATHS:
        return None
    if method in ("GET", "HEAD"):
        return "read"
    if any(route.match(path) for route in RECOVER_ROUTES):
        return "recover"
    return "admin"


class Guard:
    def __init__(
        self, app: App, gate: Callable[[], Gate], redact: Callable[[str], str] = str
    ) -> None:
        self.app = app
        self.gate = gate  # the current gate: a reload swaps it
        self.redact = redact

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        role = role_for(scope["method"], scope["path"])
        if role is not None:
            try:
                caller = self.gate().check(_header(scope, b"authorization"), role)
            except Denied as refused:
                await self._answer(send, refused.status, str(refused), refused.headers)
                return
            scope.setdefault("state", {})["caller"] = caller
        body = await self._body(scope, receive)
        if body is None:
            await self._answer(send, 413, f"request body over {MAX_BODY_BYTES} bytes")
            return
        await self.app(scope, _replay(body), send)

    async def _body(self, scope: Scope, receive: Receive) -> bytes | None:
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)

    async def _answer(
        self, send: Send, status: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        body = self.redact(json.dumps({"error": message})).encode()
        raw = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive
