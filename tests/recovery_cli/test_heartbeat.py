"""The runner's heartbeat: real ``recover`` and ``watch`` processes pinging a real HTTP server
on a loopback port, which records every request."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from recovery_cli.config import parse_config
from recovery_cli.errors import ConfigError, ExitCode
from recovery_cli.heartbeat import Pacer, origin, ping_url
from tests.recovery_cli.test_startup_paths import run as run_reporting_modules
from tests.support.cli import Workspace, base_config, command_component
from tests.support.net import free_port
from tests.support.receiver import LoopbackServer

CHECK = "/ping/0f3c"  # the path part of a Healthchecks URL: the check's secret


@dataclass(frozen=True)
class Ping:
    method: str
    path: str
    query: dict[str, list[str]]
    body: str
    authorization: str | None


class PingServer(LoopbackServer):
    """Records each request; answers ``status`` (200 unless told otherwise)."""

    server_class = ThreadingHTTPServer

    def __init__(self) -> None:
        self.pings: list[Ping] = []
        self.status = 200
        super().__init__()

    @property
    def url(self) -> str:
        return f"{super().url}{CHECK}"

    def paths(self) -> list[str]:
        return [p.path for p in self.pings]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = urlsplit(self.path)
                server.pings.append(
                    Ping(
                        "POST",
                        parts.path,
                        parse_qs(parts.query),
                        body.decode(),
                        self.headers.get("Authorization"),
                    )
                )
                self.send_response(server.status)
                if server.status in (301, 302):
                    self.send_header("Location", f"http://127.0.0.1:{server.port}/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args: object) -> None:
                return

        return Handler


@pytest.fixture
def pings() -> Iterator[PingServer]:
    with PingServer() as server:
        yield server


def healthy() -> dict[str, Any]:
    return command_component(["true"], {"fix": ["true"]})


def broken() -> dict[str, Any]:
    return command_component(["false"], {"fix": ["false"]})


def config(component: dict[str, Any], **alerting: Any) -> dict[str, Any]:
    data = base_config({"app": component})
    data["alerting"] = alerting
    return data


def heartbeat_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "heartbeat" in line]


# -- recover -------------------------------------------------------------------------------


def test_a_healthy_run_pings_start_then_the_bare_url(ws: Workspace, pings: PingServer) -> None:
    ws.write_config(config(healthy(), heartbeat_url=pings.url))

    result = ws.run("recover")

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert pings.paths() == [f"{CHECK}/start", CHECK]
    start, end = pings.pings
    assert start.query["rid"] == end.query["rid"]  # Healthchecks pairs the two by it
    assert end.body == "recovery recover: exit 0 (ok)"


def test_each_run_has_its_own_rid(ws: Workspace, pings: PingServer) -> None:
    ws.write_config(config(healthy(), heartbeat_url=pings.url + "?create=1"))

    for _ in range(2):
        assert ws.run("recover").returncode == 0

    assert pings.paths() == [f"{CHECK}/start", CHECK] * 2
    rids = [p.query["rid"][0] for p in pings.pings]
    assert rids[0] == rids[1] != rids[2] == rids[3]
    assert all(p.query["create"] == ["1"] for p in pings.pings)  # the URL's own query stays


def test_a_failing_run_pings_its_real_exit_code(ws: Workspace, pings: PingServer) -> None:
    ws.write_config(config(broken(), heartbeat_url=pings.url))

    failed = ws.run("recover")
    blocked = ws.run("recover")  # the cooldown now holds it

    assert (failed.returncode, blocked.returncode) == (ExitCode.UNHEALTHY, ExitCode.BLOCKED)
    assert pings.paths() == [f"{CHECK}/start", f"{CHECK}/1", f"{CHECK}/start", f"{CHECK}/3"]
    assert pings.pings[1].body == "recovery recover: exit 1 (unhealthy)"


def test_a_usage_error_after_the_config_loads_pings_exit_2(
    ws: Workspace, pings: PingServer
) -> None:
    ws.write_config(config(healthy(), heartbeat_url=pings.url))

    result = ws.run("recover", "nosuch")

    assert result.returncode == ExitCode.USAGE, result.stderr
    assert pings.paths() == [f"{CHECK}/start", f"{CHECK}/2"]


def test_a_hanging_server_is_cut_off_at_the_timeout(ws: Workspace) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = f"http://127.0.0.1:{port}{CHECK}"
        ws.write_config(config(healthy(), heartbeat_url=url, heartbeat_timeout_seconds=1))

        began = time.monotonic()
        result = ws.run("recover", "--json")
        took = time.monotonic() - began

    assert result.returncode == 0, result.stderr
    assert [r["outcome"] for r in json.loads(result.stdout)] == ["healthy"]
    assert 2.0 <= took < 15, took  # two pings, each waited for its 1 s and no longer
    assert heartbeat_lines(result.stderr) == [
        f"warning: heartbeat ping to http://127.0.0.1:{port} failed: no answer within 1s"
    ]


def test_a_refused_connection_is_one_line_and_the_same_exit_code(ws: Workspace) -> None:
    port = free_port()
    ws.write_config(config(broken(), heartbeat_url=f"http://127.0.0.1:{port}{CHECK}"))

    result = ws.run("recover")

    assert result.returncode == ExitCode.UNHEALTHY
    lines = heartbeat_lines(result.stderr)
    assert lines == [
        f"warning: heartbeat ping to http://127.0.0.1:{port} failed: connection refused"
    ]
    assert CHECK not in result.stderr


@pytest.mark.parametrize(("status", "said"), [(500, "HTTP 500"), (302, "HTTP 302")])
def test_an_error_answer_or_a_redirect_is_a_failed_ping(
    ws: Workspace, pings: PingServer, status: int, said: str
) -> None:
    pings.status = status
    ws.write_config(config(healthy(), heartbeat_url=pings.url))

    result = ws.run("recover")

    assert result.returncode == 0
    assert heartbeat_lines(result.stderr) == [
        f"warning: heartbeat ping to http://127.0.0.1:{pings.port} failed: answered {said}"
    ]
    assert "/elsewhere" not in pings.paths()  # a redirect is not followed


def test_dry_runs_and_read_only_commands_never_ping(ws: Workspace, pings: PingServer) -> None:
    ws.write_config(config(broken(), heartbeat_url=pings.url))

    for args in (("recover", "--dry-run"), ("status",), ("history",), ("metrics",)):
        ws.run(*args)
    assert pings.paths() == []

    ws.run("recover")
    assert pings.paths() == [f"{CHECK}/start", f"{CHECK}/1"]


def test_a_url_with_credentials_comes_from_the_variable_the_config_names(
    ws: Workspace, pings: PingServer
) -> None:
    secret_url = f"http://hc:s3cret-pw@127.0.0.1:{pings.port}{CHECK}"
    ws.write_config(config(healthy(), heartbeat_url_env="HEARTBEAT_URL"))

    result = ws.run("recover", env={"HEARTBEAT_URL": secret_url})

    assert result.returncode == 0, result.stderr
    assert pings.paths() == [f"{CHECK}/start", CHECK]
    assert {p.authorization for p in pings.pings} == {
        "Basic " + base64.b64encode(b"hc:s3cret-pw").decode()
    }
    assert "s3cret-pw" not in json.dumps(ws.records())


def test_an_unset_url_variable_is_one_warning_and_no_ping(ws: Workspace) -> None:
    ws.write_config(config(broken(), heartbeat_url_env="HEARTBEAT_URL"))

    result = ws.run("recover")

    assert result.returncode == ExitCode.UNHEALTHY
    assert heartbeat_lines(result.stderr) == [
        "warning: heartbeat not sent: environment variable HEARTBEAT_URL is not set"
    ]


def test_a_run_without_a_heartbeat_loads_no_http_client(ws: Workspace) -> None:
    ws.write_config(config(healthy()))
    args = ["--config", str(ws.config), "--state-dir", str(ws.state), "recover"]

    modules = run_reporting_modules(*args)["modules"]

    assert "recovery_cli.heartbeat" in modules  # the run did reach the heartbeat
    assert "urllib.request" not in modules and "http.client" not in modules


# -- watch ---------------------------------------------------------------------------------


def test_watch_pings_start_then_after_each_run(ws: Workspace, pings: PingServer) -> None:
    ws.write_config(config(healthy(), heartbeat_url=pings.url, heartbeat_interval_seconds=1))

    result = ws.run("watch", "--interval", "1.2", "--cycles", "3", timeout=60)

    assert result.returncode == 0, result.stderr
    assert pings.paths() == [f"{CHECK}/start", CHECK, CHECK, CHECK]
    assert all("rid" not in p.query for p in pings.pings)
    assert pings.pings[0].body == "recovery watch: started"


def test_a_fast_watch_loop_pings_at_most_once_a_interval(ws: Workspace, pings: PingServer) -> None:
    ws.write_config(config(broken(), heartbeat_url=pings.url, heartbeat_interval_seconds=1))

    began = time.monotonic()
    result = ws.run("watch", "--interval", "0.05", "--cycles", "25", timeout=60)
    took = time.monotonic() - began

    assert result.returncode == 0, result.stderr
    paths = pings.paths()
    assert paths[:2] == [f"{CHECK}/start", f"{CHECK}/1"]
    assert set(paths[2:]) <= {f"{CHECK}/3"}
    assert 2 <= len(paths) <= 2 + int(took), (paths, took)


def test_watch_says_a_failed_ping_once_and_keeps_going(ws: Workspace) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}{CHECK}"
    ws.write_config(config(healthy(), heartbeat_url=url, heartbeat_interval_seconds=1))

    result = ws.run("watch", "--interval", "1.1", "--cycles", "3", timeout=60)

    assert result.returncode == 0, result.stderr
    lines = heartbeat_lines(result.stderr)
    assert len(lines) == 1 and "connection refused" in lines[0], result.stderr
    assert lines[0].startswith("watch detail=")


# -- the pieces ----------------------------------------------------------------------------


def test_the_pacer_sends_the_worst_latest_code_at_most_once_an_interval() -> None:
    pacer = Pacer(interval=60)
    pacer.ran("redis", ExitCode.UNHEALTHY)
    assert pacer.due(now=1000.0) == ExitCode.UNHEALTHY
    pacer.ran("redis", ExitCode.OK)
    assert pacer.due(now=1059.9) is None
    pacer.ran("chroma", ExitCode.BLOCKED)
    assert pacer.due(now=1060.0) == ExitCode.BLOCKED  # redis's latest is 0 now
    pacer.keep_only(["redis"])
    assert pacer.due(now=1200.0) == ExitCode.OK


def test_ping_urls_and_what_a_message_may_show_of_them() -> None:
    assert ping_url("https://hc-ping.com/abc/", "/start", "r1") == (
        "https://hc-ping.com/abc/start?rid=r1"
    )
    assert ping_url("https://hc.example/k/slug?create=1", "/3", None) == (
        "https://hc.example/k/slug/3?create=1"
    )
    assert origin("https://user:pw@hc.example:8443/uuid/start") == "https://hc.example:8443"
    assert origin("http://[::1]:9/x") == "http://[::1]:9"


# -- config --------------------------------------------------------------------------------

GOOD = """\
version: 1
components:
  app:
    kind: command
    settings: {probe: ["true"]}
    chain: [fix]
    strategies: {fix: {params: {command: ["true"]}}}
alerting:
"""

BAD = [
    ("  heartbeat_url: ftp://hc.example/abc\n", "alerting.heartbeat_url", "http:// or https://"),
    ("  heartbeat_url: hc-ping.com/abc\n", "alerting.heartbeat_url", "http:// or https://"),
    ("  heartbeat_url: 'https://'\n", "alerting.heartbeat_url", "with a host"),
    ("  heartbeat_url: http://hc.example:99999/x\n", "alerting.heartbeat_url", "http://"),
    ("  heartbeat_url: 'https://hc.example/a b'\n", "alerting.heartbeat_url", "without spaces"),
    ("  heartbeat_url: https://u:pw@hc.example/x\n", "alerting.heartbeat_url", "*_env"),
    ("  heartbeat_url: https://hc.example/x?token=abc\n", "alerting.heartbeat_url", "*_env"),
    ("  heartbeat_url: 'https://hc.example/p\u00efng/abc'\n", "alerting.heartbeat_url", "ASCII"),
    ("  heartbeat_url_env: 'not a name'\n", "alerting.heartbeat_url_env", "pattern"),
    ("  heartbeat_timeout_seconds: 0\n", "alerting.heartbeat_timeout_seconds", "greater than"),
    ("  heartbeat_timeout_seconds: 11\n", "alerting.heartbeat_timeout_seconds", "less than"),
    ("  heartbeat_interval_seconds: 0.5\n", "alerting.heartbeat_interval_seconds", "greater"),
    ("  heartbeat_uri: https://hc.example/x\n", "alerting.heartbeat_uri", "unknown key"),
    (
        "  heartbeat_url: https://hc.example/x\n  heartbeat_url_env: HB\n",
        "alerting",
        "exclude each other",
    ),
]


@pytest.mark.parametrize(("lines", "key", "message"), BAD)
def test_a_bad_heartbeat_setting_is_a_config_error_naming_the_key(
    lines: str, key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(GOOD + lines, "cfg.yml")

    [problem] = caught.value.problems
    # a setting's own line; the two that exclude each other: the ``alerting:`` line
    assert (problem.key, problem.line) == (key, 8 if key == "alerting" else 9), problem
    assert message in problem.message
    assert "pw" not in problem.message and "abc" not in problem.message


def test_heartbeat_settings_load_with_their_defaults() -> None:
    alerting = parse_config(GOOD + "  heartbeat_url: https://hc-ping.com/x\n", "c").alerting
    assert alerting.heartbeat_url == "https://hc-ping.com/x"
    assert (alerting.heartbeat_timeout_seconds, alerting.heartbeat_interval_seconds) == (3, 60)


def test_the_cli_refuses_a_bad_url_with_exit_2(ws: Workspace) -> None:
    ws.config.write_text(GOOD + "  heartbeat_url: ftp://127.0.0.1/x\n")

    result = ws.run("recover")

    assert result.returncode == ExitCode.USAGE
    assert result.stderr.splitlines() == [
        f"{ws.config}:9: alerting.heartbeat_url: must be an http:// or https:// URL with a host"
    ]


# -- a server that trickles its answer ------------------------------------------------------


@pytest.fixture
def trickling() -> Iterator[str]:
    """A server that accepts one connection at a time and sends it a byte every 0.1 s, never
    ending its answer, until the client closes; its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                while not stop.is_set():
                    try:
                        conn.sendall(b"X")
                    except OSError:
                        break
                    time.sleep(0.1)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/ping/uuid"
    stop.set()
    server.join(5)
    listener.close()


def test_a_trickling_answer_keeps_no_thread_nor_socket_past_the_deadline(trickling: str) -> None:
    import os

    from recovery_cli.heartbeat import send

    threads, fds = threading.active_count(), len(os.listdir("/proc/self/fd"))
    answers = [send(trickling, "x", 0.5) for _ in range(3)]
    deadline = time.monotonic() + 3  # the server notices a closed socket at its next byte
    while time.monotonic() < deadline and (
        threading.active_count() > threads or len(os.listdir("/proc/self/fd")) > fds
    ):
        time.sleep(0.05)

    assert answers == ["no answer within 0.5s"] * 3
    assert threading.active_count() == threads  # each ping's thread ended with its deadline
    assert len(os.listdir("/proc/self/fd")) == fds  # and its socket is closed
