"""``recovery serve`` against hostile callers and careless operators: each test here is a
defect found by attacking the API, kept from coming back."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import (
    ADMIN_TOKEN,
    BOT_TOKEN,
    TOKEN_ENV,
    app_config,
    close_streams,
    running_api,
    wait_for,
)
from tests.support.cli import Lines, Workspace
from tests.support.net import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def flag(tmp_path: Path) -> Path:
    return tmp_path / "flag"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_sigterm_during_an_api_recovery_ends_the_step_and_records_it_interrupted(
    ws: Workspace, flag: Path, tmp_path: Path
) -> None:
    pidfile = tmp_path / "step.pid"
    slow = ["sh", "-c", f"echo $$ > {pidfile}; sleep 30; touch {flag}"]
    ws.write_config(app_config(flag, slow))
    answers: list[httpx.Response] = []
    with running_api(ws) as api:
        caller = threading.Thread(
            target=lambda: answers.append(api.post("/api/v1/components/app/recover"))
        )
        caller.start()
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
        step_pid = int(pidfile.read_text())
        started = time.monotonic()
        code = api.stop()
        took = time.monotonic() - started
        caller.join(30)

    assert code == 0 and took < 10
    assert not _alive(step_pid)  # the step's process was ended, not orphaned
    steps = ws.events("step", "app")
    attempts = ws.events("attempt", "app")
    assert [s["outcome"] for s in steps] == ["interrupted"]
    assert [a["outcome"] for a in attempts] == ["started", "interrupted"]
    assert answers and answers[0].status_code == 503
    assert "interrupted" in answers[0].json()["error"]
    time.sleep(0.5)
    assert not flag.exists()


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run(
        [*request, "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_a_reload_that_drops_the_tokens_of_a_non_loopback_listener_is_refused(
    ws: Workspace, flag: Path, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    config = app_config(flag, ssl_certfile=str(cert), ssl_keyfile=str(key))
    ws.write_config(config)
    port = free_port()
    proc = ws.popen("serve", "--listen", f"127.1:{port}", env=TOKEN_ENV)
    lines = Lines(proc)
    try:
        lines.wait_for("API listening")
        config["api"]["tokens"] = []
        ws.write_config(config)
        proc.send_signal(signal.SIGHUP)
        refused = lines.wait_for("API tokens not reloaded")
        answer = httpx.get(f"https://127.0.0.1:{port}/api/v1/status", verify=False, timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        close_streams(proc)
    assert "not a loopback address" in refused
    assert answer.status_code == 401


def test_a_token_kept_after_a_refused_reload_stays_redacted(ws: Workspace, flag: Path) -> None:
    config = app_config(flag)
    ws.write_config(config)
    with running_api(ws) as api:
        config["api"]["tokens"][1]["env"] = "TEST_UNSET_TOKEN"
        ws.write_config(config)
        api.proc.send_signal(signal.SIGHUP)
        api.lines.wait_for("API tokens not reloaded")
        answer = api.post("/api/v1/components/app/recover", {"reason": f"pasted {ADMIN_TOKEN}"})
    assert answer.status_code == 200
    for path in (ws.state / "audit").glob("*.jsonl"):
        text = path.read_text()
        assert ADMIN_TOKEN not in text and "pasted ***" in text


def test_half_open_connections_neither_starve_the_watch_nor_stay_forever(
    ws: Workspace, flag: Path
) -> None:
    ws.write_config(app_config(flag))
    flag.touch()
    port = free_port()
    proc = subprocess.Popen(
        [
            "sh",
            "-c",
            'ulimit -n 400 && exec "$@"',
            "sh",
            *ws.argv("watch", "--interval", "0.5", "--listen", f"127.0.0.1:{port}"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **TOKEN_ENV, "RECOVERY_HOST": "h"},
    )
    lines = Lines(proc)
    held: list[socket.socket] = []
    try:
        lines.wait_for("API listening")
        for _ in range(500):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # and never the rest
            held.append(sock)
        flag.unlink()
        wait_for(flag.exists, timeout=30)  # the loop still recovers
        wait_for(lambda: _closed(held[0]), timeout=30)  # idle ones are closed by the server
        answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    finally:
        for sock in held:
            sock.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        close_streams(proc)
    assert answer.status_code == 200
    assert not any("Too many open files" in ln for ln in lines.lines)


def test_sockets_held_open_without_a_request_do_not_turn_other_callers_away(
    ws: Workspace, flag: Path
) -> None:
    ws.write_config(app_config(flag))
    held: list[socket.socket] = []
    with running_api(ws) as api:
        port = int(api.base_url.rsplit(":", 1)[1])
        try:
            for _ in range(100):  # more than the 64 calls allowed at once, fewer than 256
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(b"GET /healthz HTTP/1.1\r\n")
                held.append(sock)
            health = api.get("/healthz", token=None)
            status = api.get("/api/v1/status", probe="false")
        finally:
            for sock in held:
                sock.close()
    assert health.status_code == 200, health.text
    assert status.status_code == 200, status.text


def test_the_unix_socket_of_another_service_or_a_file_put_in_ours_is_never_removed(
    ws: Workspace, flag: Path, tmp_path: Path
) -> None:
    ws.write_config(app_config(flag))
    other = tmp_path / "other.sock"
    service = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    service.bind(str(other))
    busy = ws.run("serve", "--listen", f"unix:{other}", env=TOKEN_ENV)
    inode = other.stat().st_ino
    service.close()

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    open_dir = ws.run("serve", "--listen", f"unix:{shared / 'api.sock'}", env=TOKEN_ENV)

    ours = tmp_path / "api.sock"
    proc = ws.popen("serve", "--listen", f"unix:{ours}", env=TOKEN_ENV)
    lines = Lines(proc)
    try:
        lines.wait_for("API listening")
        ours.unlink()
        ours.write_text("someone's data")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        close_streams(proc)

    assert busy.returncode == 2 and "a socket is there in use" in busy.stderr
    assert other.stat().st_ino == inode
    assert open_dir.returncode == 2 and "others may write to it" in open_dir.stderr
    assert ours.read_text() == "someone's data"


def test_an_api_approval_passes_no_gate_and_needs_an_admin_token(ws: Workspace, flag: Path) -> None:
    config = app_config(flag)
    component = config["components"]["app"]
    component["chain"] = ["bad", "fix"]
    component["strategies"]["bad"] = {"params": {"command": ["false"]}}
    component["strategies"]["fix"]["approval"] = "required"
    config["defaults"]["max_attempts_per_hour"] = 1
    ws.write_config(config)
    asked = ws.run("recover", "app", "--json")
    approval_id = json.loads(asked.stdout)[0]["approval_id"]
    with running_api(ws) as api:
        by_bot = api.post(f"/api/v1/approvals/{approval_id}", {"decision": "approve"}, BOT_TOKEN)
        by_admin = api.post(f"/api/v1/approvals/{approval_id}", {"decision": "approve"})

    assert approval_id and by_bot.status_code == 403
    assert by_admin.status_code == 200
    assert by_admin.headers["x-recovery-exit-code"] == "3"  # the hourly cap holds
    assert by_admin.json()[0]["outcome"] == "blocked"
    assert not flag.exists()


def test_hostile_bodies_and_paths_get_the_documented_answers(ws: Workspace, flag: Path) -> None:
    ws.write_config(app_config(flag))
    with running_api(ws) as api, api.client() as client:
        deep = client.post(
            "/api/v1/alertmanager",
            content=b"[" * 100_000,
            headers={"content-type": "application/json"},
        )
        bad_json = client.post(
            "/api/v1/components/app/recover",
            content=b"{nope",
            headers={"content-type": "application/json"},
        )

        def chunks() -> Any:
            for _ in range(20):
                yield b" " * 100_000

        chunked = client.post(
            "/api/v1/components/app/recover",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        missing = client.get("/api/v1/nothing")
        slash = client.get("/api/v1/status/")
        wrong_method = client.put("/api/v1/status")
        with api.client(token=None) as anonymous:
            unauthenticated = anonymous.post(
                "/api/v1/components/app/recover",
                content=b"{nope",
                headers={"content-type": "application/json"},
            )

    assert deep.status_code == 400 and deep.json() == {"error": "the body is nested too deeply"}
    assert bad_json.status_code == 400 and bad_json.json() == {"error": "the body is not JSON"}
    assert chunked.status_code == 413
    for answer in (missing, slash, wrong_method):
        assert answer.status_code in (404, 405) and set(answer.json()) == {"error"}
    assert unauthenticated.status_code == 401
    assert not (ws.state / "errors.log").exists()


def test_odd_listen_ports_and_tokens_are_usage_errors(ws: Workspace, flag: Path) -> None:
    ws.write_config(app_config(flag))
    superscript = ws.run("serve", "--listen", "127.0.0.1:\u00b2", env=TOKEN_ENV)
    accented = ws.run(
        "serve",
        "--listen",
        "127.0.0.1:1",
        env={**TOKEN_ENV, "TEST_READ_TOKEN": "lecture-t\u00f6k\u00e9n-0123456789"},
    )
    config = app_config(flag)
    config["api"]["tokens"][0]["env"] = "TEST_ADMIN_TOKEN"  # a read token sharing admin's
    ws.write_config(config)
    shared_env = ws.run("serve", "--listen", "127.0.0.1:1", env=TOKEN_ENV)

    assert superscript.returncode == 2 and "use HOST:PORT" in superscript.stderr
    assert accented.returncode == 2 and "printable ASCII" in accented.stderr
    assert shared_env.returncode == 2 and "token envs must be unique" in shared_env.stderr
    assert not (ws.state / "errors.log").exists()


def test_an_alert_cannot_forge_a_log_line_or_pass_a_label_that_is_not_text(
    ws: Workspace, flag: Path
) -> None:
    ws.write_config(app_config(flag))
    forged = "x\nattempt component=app outcome=success"
    with running_api(ws) as api:
        text_label = api.post(
            "/api/v1/alertmanager",
            {"alerts": [{"status": "firing", "labels": {"component": forged}}]},
            BOT_TOKEN,
        )
        null_label = api.post(
            "/api/v1/alertmanager",
            {"alerts": [{"status": "firing", "labels": {"component": None}}]},
            BOT_TOKEN,
        )
        time.sleep(0.3)
        logged = list(api.lines.lines)

    assert text_label.json()["verdicts"][0]["action"] == "ignored"
    assert not [ln for ln in logged if ln.startswith("attempt ")]
    assert null_label.status_code == 400 and "must be strings" in null_label.json()["error"]


def _closed(sock: socket.socket) -> bool:
    sock.settimeout(0.1)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True
