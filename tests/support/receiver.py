"""A JSON receiver on a free loopback port, for alert tests: it records every POST."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Self


class LoopbackServer:
    """An HTTP server on a free loopback port, serving from a thread while the ``with``
    block runs; a subclass gives its request handler (``_handler``). One request at a time
    (so what is recorded is in the order sent) unless ``server_class`` says otherwise."""

    server_class: type[HTTPServer] = HTTPServer

    def __init__(self) -> None:
        self._server = self.server_class(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError


class AlertReceiver(LoopbackServer):
    """``received``: (path, body) per POST, in order. Set ``status`` to answer with another
    code (what is answered with a failure is not recorded)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []
        self.status = 200
        super().__init__()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.status < 300:
                    receiver.received.append((self.path, body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        return Handler
