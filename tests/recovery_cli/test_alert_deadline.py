"""A slow alert endpoint costs a run at most the alert deadline, and never while the
component lock is held."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.cli import Workspace, base_config, command_component


@pytest.fixture
def trickler() -> Iterator[str]:
    """An HTTP server that answers one byte every half second, forever."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.5)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
                if stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.5)

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    server.close()


def test_a_trickling_alert_endpoint_is_cut_off_at_the_deadline(
    ws: Workspace, trickler: str
) -> None:
    config = base_config(
        {"app": command_component(["false"], {"fix": ["false"]})},
        cooldown_seconds=0,
        lock_wait_seconds=0.5,
        max_attempts_per_hour=10,
    )
    config["alerting"] = {"alertmanager_url": trickler, "timeout_seconds": 3}
    ws.write_config(config)
    started = time.monotonic()
    first = ws.popen("recover", "app")
    while not any(r["outcome"] == "failed" for r in _attempts(ws)):
        assert time.monotonic() - started < 30, "the first run never finished its chain"
        time.sleep(0.05)
    second = ws.run("recover", "app")  # the first one is now waiting on the alert
    _, err = first.communicate(timeout=30)
    elapsed = time.monotonic() - started
    assert first.returncode == 1
    assert "no answer within 3s" in err
    assert elapsed < 15
    assert second.returncode == 1, second.stdout + second.stderr
    assert not ws.events("blocked", "app"), "the second run found the component lock held"


def _attempts(ws: Workspace) -> list[dict[str, object]]:
    try:
        return ws.events("attempt", "app")
    except (FileNotFoundError, ValueError):
        return []
