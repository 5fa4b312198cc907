"""A small OpenAI-compatible model backend for OpenWebUI tests.

Serves ``GET /v1/models`` and ``POST /v1/chat/completions`` for a fixed list of models, on a
free loopback port, in a thread. ``fail_with(503)`` makes it answer every request with that
status (an upstream outage); ``fail_chat_with(503)`` fails only chat, the usual shape of an
overloaded inference server whose model list still answers. ``recover()`` lifts both.
``stop()`` closes the port (a backend that died: connection refused); ``start()`` again
serves on the same port.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.net import free_port


class ModelStub:
    def __init__(self, models: tuple[str, ...] = ("stub-primary", "stub-fallback")) -> None:
        self.models = models
        self.port = free_port()
        self.status_all: int | None = None
        self.status_chat: int | None = None
        self.chat_requests: list[str] = []
        self._server: _StubServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> ModelStub:
        if self._server is None:
            self._server = _StubServer(self)
            self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is not None and thread is not None:
            server.shutdown()
            server.server_close()
            thread.join(5)

    def fail_with(self, status: int) -> None:
        self.status_all = status

    def fail_chat_with(self, status: int) -> None:
        self.status_chat = status

    def recover(self) -> None:
        self.status_all = None
        self.status_chat = None

    def __enter__(self) -> ModelStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, stub: ModelStub) -> None:
        super().__init__(("127.0.0.1", stub.port), _StubHandler)
        self.stub = stub


class _StubHandler(BaseHTTPRequestHandler):
    @property
    def stub(self) -> ModelStub:
        assert isinstance(self.server, _StubServer)
        return self.server.stub

    def do_GET(self) -> None:
        if self._failing(chat=False):
            return
        if self.path.rstrip("/") == "/v1/models":
            data = [{"id": m, "object": "model", "owned_by": "stub"} for m in self.stub.models]
            self._send(200, {"object": "list", "data": data})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        body = self._body()
        if self._failing(chat=True):
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": "not found"}})
            return
        model = str(body.get("model", ""))
        if model not in self.stub.models:
            self._send(404, {"error": {"message": f"model {model!r} not found"}})
            return
        self.stub.chat_requests.append(model)
        self._send(200, _completion(model))

    def _failing(self, chat: bool) -> bool:
        status = self.stub.status_all or (self.stub.status_chat if chat else None)
        if status is None:
            return False
        self._send(status, {"error": {"message": "stub backend unavailable", "code": status}})
        return True

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            parsed = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return


def _completion(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "pong"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
