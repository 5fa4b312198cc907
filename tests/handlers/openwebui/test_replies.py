"""What a failed call to OpenWebUI says: the request it was, named once."""

from __future__ import annotations

import socket
import time

from recovery_cli.handlers.openwebui.api import Api, open_client
from recovery_cli.handlers.openwebui.checks import UNREACHABLE, check_serving


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when this returns: nothing listens


def test_an_unreachable_server_names_the_request_once() -> None:
    with open_client(f"http://127.0.0.1:{closed_port()}") as client:
        finding = check_serving(Api(client, time.monotonic() + 5))
    assert finding is not None and finding.failure_type == UNREACHABLE
    assert finding.detail.startswith("GET /health: ")
    assert finding.detail.count("GET /health") == 1, finding.detail


def test_a_call_out_of_time_names_the_request_once() -> None:
    with open_client(f"http://127.0.0.1:{closed_port()}") as client:
        finding = check_serving(Api(client, time.monotonic()))
    assert finding is not None and finding.detail == "GET /health: out of time"
