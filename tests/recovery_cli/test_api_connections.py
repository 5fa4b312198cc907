"""The API's limit on calls in progress, on a real uvicorn server: it counts calls, never
connections that are open without one."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from recovery_cli.api_connections import MAX_CALLS, CallLimit, guarded_protocol
from tests.support.api import wait_for
from tests.support.net import free_port


class Gate:
    """An ASGI app whose calls wait until ``open`` is set, counting those that arrived."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.arrived = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.arrived += 1
        while not self.open.is_set():
            await asyncio.sleep(0.01)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def served() -> Iterator[tuple[str, Gate]]:
    gate = Gate()
    port = free_port()
    config = uvicorn.Config(
        CallLimit(gate),
        host="127.0.0.1",
        port=port,
        http=guarded_protocol(),
        log_config=None,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive())
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}", gate
    finally:
        gate.open.set()
        server.should_exit = True
        thread.join(10)


def test_past_the_limit_a_call_is_answered_503_at_once_and_the_limit_frees_after(
    served: tuple[str, Gate],
) -> None:
    url, gate = served
    answers: list[int] = []
    limits = httpx.Limits(max_connections=MAX_CALLS + 1)
    with httpx.Client(base_url=url, timeout=30, limits=limits) as client:
        callers = [
            threading.Thread(target=lambda: answers.append(client.get("/").status_code))
            for _ in range(MAX_CALLS)
        ]
        for caller in callers:
            caller.start()
        wait_for(lambda: gate.arrived == MAX_CALLS)
        refused = client.get("/")
        reached_while_full = gate.arrived
        gate.open.set()
        for caller in callers:
            caller.join(30)
        after = client.get("/")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "calls in progress" in refused.json()["error"]
    assert reached_while_full == MAX_CALLS  # the refused call never reached the app
    assert answers == [200] * MAX_CALLS
    assert after.status_code == 200


def test_idle_connections_past_the_limit_do_not_count_as_calls(served: tuple[str, Gate]) -> None:
    url, gate = served
    gate.open.set()
    port = int(url.rsplit(":", 1)[1])
    held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(MAX_CALLS * 2)]
    try:
        for sock in held:
            sock.sendall(b"GET / HTTP/1.1\r\n")  # the headers never finish
        answer = httpx.get(url, timeout=10)
    finally:
        for sock in held:
            sock.close()
    assert answer.status_code == 200
