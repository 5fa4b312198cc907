"""A small fake Docker Engine API on a unix socket, for the real docker SDK to talk to.

Implements what service control uses: ``_ping``, ``version``, ``containers/json``,
``containers/{id}/json``, ``containers/{id}/restart|stop|start`` and the engine's 404 shape.
Each container is a small state machine the test drives (status, health, hooks).
"""

from __future__ import annotations

import json
import re
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_VERSION = "1.45"
VERSION_PREFIX = re.compile(r"^/v\d+\.\d+")
CONTAINER_PATH = re.compile(r"^/containers/([^/]+)/(json|restart|stop|start)$")


@dataclass
class FakeContainer:
    name: str
    status: str = "running"
    health: str | None = None  # None: no HEALTHCHECK; else starting|healthy|unhealthy
    restart_count: int = 0
    oom_killed: bool = False
    # Called on restart/start, e.g. to bring a real process back behind the "container".
    on_start: Callable[[], None] | None = None
    # Health the container reports after a restart/start.
    health_after_start: str | None = None
    refuse_restart: bool = False
    calls: list[str] = field(default_factory=list)
    pid: int = 0  # State.Pid: the container's main process on this host (0: not running)

    def inspect(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "Status": self.status,
            "Running": self.status == "running",
            "Restarting": self.status == "restarting",
            "OOMKilled": self.oom_killed,
            "Pid": self.pid if self.status == "running" else 0,
        }
        if self.health is not None:
            state["Health"] = {"Status": self.health, "FailingStreak": 0, "Log": []}
        return {
            "Id": f"{self.name}-0123456789abcdef",
            "Name": f"/{self.name}",
            "State": state,
            "RestartCount": self.restart_count,
            "Config": {"Image": "fake:latest"},
        }

    def started(self) -> None:
        self.status = "running"
        if self.health_after_start is not None:
            self.health = self.health_after_start
        if self.on_start is not None:
            self.on_start()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def address_string(self) -> str:
        return "unix"

    def _send(self, code: int, body: Any = None, head_only: bool = False) -> None:
        raw = b"OK" if body is None else json.dumps(body).encode()
        content_type = "text/plain" if body is None else "application/json"
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Content-Length", str(0 if code == 204 else len(raw)))
        self.end_headers()
        if not head_only and code != 204:
            self.wfile.write(raw)

    def _path(self) -> tuple[str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        return VERSION_PREFIX.sub("", parts.path), parse_qs(parts.query)

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def do_HEAD(self) -> None:
        self._send(200, None, head_only=True)

    def do_GET(self) -> None:
        path, _ = self._path()
        self.server.engine.requests.append(f"GET {path}")
        if path == "/_ping":
            return self._send(200)
        if path == "/version":
            return self._send(
                200, {"ApiVersion": API_VERSION, "MinAPIVersion": "1.24", "Version": "fake"}
            )
        if path == "/containers/json":
            return self._send(200, [c.inspect() for c in self.server.engine.containers.values()])
        match = CONTAINER_PATH.match(path)
        if match and match.group(2) == "json":
            return self._with_container(match.group(1), lambda c: self._send(200, c.inspect()))
        return self._send(404, {"message": f"page not found: {path}"})

    def do_POST(self) -> None:
        self._drain()
        path, _ = self._path()
        self.server.engine.requests.append(f"POST {path}")
        match = CONTAINER_PATH.match(path)
        if not match or match.group(2) == "json":
            return self._send(404, {"message": f"page not found: {path}"})
        verb = match.group(2)
        self._with_container(match.group(1), lambda c: self._act(c, verb))

    def _with_container(self, ident: str, then: Callable[[FakeContainer], None]) -> None:
        container = self.server.engine.find(ident)
        if container is None:
            self._send(404, {"message": f"No such container: {ident}"})
            return
        with self.server.engine.lock:
            then(container)

    def _act(self, container: FakeContainer, verb: str) -> None:
        container.calls.append(verb)
        if verb == "restart" and container.refuse_restart:
            self._send(500, {"message": "cannot restart container: driver failed"})
            return
        if verb == "stop":
            container.status = "exited"
        else:
            if verb == "restart":
                container.restart_count += 1
            container.started()
        self._send(204)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False
    engine: FakeEngine


class FakeEngine:
    """``with FakeEngine(path) as engine:`` serves until the block ends."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.containers: dict[str, FakeContainer] = {}
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def add(self, container: FakeContainer) -> FakeContainer:
        self.containers[container.name] = container
        return container

    def find(self, ident: str) -> FakeContainer | None:
        for container in self.containers.values():
            if ident in (container.name, container.inspect()["Id"]):
                return container
        return None

    def __enter__(self) -> FakeEngine:
        server = _Server(str(self.socket_path), _Handler)
        server.engine = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self.socket_path.unlink(missing_ok=True)
