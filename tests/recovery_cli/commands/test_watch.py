"""``recovery watch`` as systemd and people run it: a real process, real signals, a real
notify socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Lines, Workspace, base_config, command_component


def flag_component(flag: Path, fix: list[str] | None = None) -> dict[str, object]:
    return command_component(["test", "-f", str(flag)], {"fix": fix or ["touch", str(flag)]})


@pytest.fixture
def stop_after(ws: Workspace) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_watch_recovers_a_component_through_the_same_gates_and_audit(
    ws: Workspace, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    ws.write_config(base_config({"app": flag_component(flag)}))

    result = ws.run("watch", "--interval", "0.2", "--cycles", "3", timeout=60)

    assert result.returncode == 0, result.stderr
    assert flag.exists()
    attempts = ws.events("attempt", "app")
    assert [(a["outcome"], a["trigger"]) for a in attempts] == [
        ("started", "watch"),
        ("success", "watch"),
    ]
    assert any(
        line.startswith("attempt ") and "outcome=success" in line
        for line in result.stderr.splitlines()
    ), result.stderr


def test_json_event_lines_are_one_object_each(ws: Workspace, tmp_path: Path) -> None:
    ws.write_config(base_config({"app": flag_component(tmp_path / "flag")}))

    result = ws.run("watch", "--interval", "0.2", "--cycles", "2", "--log-format", "json")

    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert {"watch", "attempt", "step"} <= {e["event"] for e in events}


def test_systemd_hears_ready_status_watchdog_and_stopping(ws: Workspace, tmp_path: Path) -> None:
    ws.write_config(base_config({"app": flag_component(tmp_path / "flag")}))
    address = str(tmp_path / "notify.sock")
    messages: list[str] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(0.2)
        reader = threading.Thread(target=_receive, args=(sock, messages), daemon=True)
        reader.start()
        env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"}

        result = ws.run("watch", "--interval", "0.5", "--cycles", "3", env=env, timeout=60)

        reader.join(5)
    assert result.returncode == 0, result.stderr
    assert "READY=1" in "\n".join(messages).split("\n")
    assert sum(m == "WATCHDOG=1" for m in messages) >= 5  # every 0.1 s over about 1.5 s
    assert any(m.startswith("STATUS=watching 1 components") for m in messages)
    assert messages[-1] == "STOPPING=1"


def test_a_notify_socket_nobody_reads_never_stops_the_watch(ws: Workspace, tmp_path: Path) -> None:
    """A unix datagram queue holds 10 messages (net.unix.max_dgram_qlen): past that, a
    blocking send would hang the watch."""
    ws.write_config(base_config({"app": flag_component(tmp_path / "flag")}))
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "100000"}

        result = ws.run("watch", "--interval", "0.5", "--cycles", "4", env=env, timeout=60)

    assert result.returncode == 0, result.stderr


def _receive(sock: socket.socket, messages: list[str]) -> None:
    idle = 0
    while idle < 25:  # until 5 s pass without a message
        try:
            messages.append(sock.recv(4096).decode())
            idle = 0
        except TimeoutError:
            idle += 1


def test_sighup_keeps_the_old_config_when_the_new_one_is_broken(
    ws: Workspace, tmp_path: Path, stop_after: list[subprocess.Popen[str]]
) -> None:
    ws.write_config(base_config({"app": flag_component(tmp_path / "flag")}))
    proc = ws.popen("watch", "--interval", "0.2")
    stop_after.append(proc)
    lines = Lines(proc)
    lines.wait_for("watching")

    ws.config.write_text("version: 1\ncomponents: {app: {kind: command, chain: [nope]}}\n")
    proc.send_signal(signal.SIGHUP)
    refused = lines.wait_for("config reload refused")
    ws.write_config(
        base_config(
            {"app": flag_component(tmp_path / "flag"), "new": flag_component(tmp_path / "new")}
        )
    )
    proc.send_signal(signal.SIGHUP)
    lines.wait_for("config reloaded")
    lines.wait_for("component=new")  # the new component is watched
    proc.send_signal(signal.SIGTERM)

    assert proc.wait(30) == 0
    assert "recovery_config.yml:2: components.app" in refused
    assert (tmp_path / "new").exists()


def test_sigterm_during_a_step_records_it_and_exits_cleanly(
    ws: Workspace, tmp_path: Path, stop_after: list[subprocess.Popen[str]]
) -> None:
    ws.write_config(base_config({"app": flag_component(tmp_path / "flag", ["sleep", "30"])}))
    proc = ws.popen("watch", "--interval", "0.2")
    stop_after.append(proc)
    Lines(proc).wait_for("outcome=started")
    time.sleep(0.5)  # inside the step

    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)

    assert proc.wait(30) == 0
    assert time.monotonic() - started < 10
    assert ws.events("step", "app")[-1]["outcome"] == "interrupted"
    assert ws.events("attempt", "app")[-1]["outcome"] == "interrupted"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--interval", "0"), "--interval must be above 0"),
        (("--cycles", "0"), "--cycles must be at least 1"),
        (("--log-format", "xml"), "--log-format must be one of"),
        (("nosuch",), "unknown component 'nosuch'"),
    ],
)
def test_bad_watch_options_are_one_line_and_exit_2(
    ws: Workspace, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    ws.write_config(base_config({"app": flag_component(tmp_path / "flag")}))
    result = ws.run("watch", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def served_component(tmp_path: Path) -> tuple[dict[str, object], Path]:
    """A real process (``sleep``) behind a pidfile; the probe checks it, the fix starts a
    new one, and the service block names the pidfile."""
    pidfile = tmp_path / "app.pid"
    start = ["sh", "-c", f"sleep 1000 >/dev/null 2>&1 & echo $! > {pidfile}"]
    # alive and not a zombie: a process killed a moment ago waits to be reaped
    probe = [
        sys.executable,
        "-c",
        "import sys; pid = open(sys.argv[1]).read().split()[0];"
        " stat = open(f'/proc/{pid}/stat').read();"
        " sys.exit(stat.rsplit(')', 1)[1].split()[0] == 'Z')",
        str(pidfile),
    ]
    component = command_component(probe, {"start": start})
    component["service"] = {"method": "command", "start": start, "pidfile": str(pidfile)}
    subprocess.run(start, check=True)
    return component, pidfile


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_process_is_recovered_at_once_not_at_its_interval(
    ws: Workspace, tmp_path: Path, stop_after: list[subprocess.Popen[str]]
) -> None:
    component, pidfile = served_component(tmp_path)
    ws.write_config(base_config({"app": component}))
    proc = ws.popen("watch", "--interval", "120")
    stop_after.append(proc)
    lines = Lines(proc)
    lines.wait_for("watching")
    first = int(pidfile.read_text())
    time.sleep(2)  # past the first run: the next is two minutes away

    killed = time.monotonic()
    os.kill(first, signal.SIGKILL)
    lines.wait_for("its process exited")
    lines.wait_for("outcome=success")
    took = time.monotonic() - killed

    second = int(pidfile.read_text())
    assert second != first and alive(second)
    assert took < 20, took  # the interval is 120 s
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    os.kill(second, signal.SIGKILL)


def test_watch_cron_runs_and_a_person_share_one_state_dir_with_every_guarantee(
    ws: Workspace, tmp_path: Path, stop_after: list[subprocess.Popen[str]]
) -> None:
    broken = command_component(["false"], {"fix": ["true"]})
    broken["max_attempts_per_hour"] = 5
    broken["cooldown_seconds"] = 0
    gated = flag_component(tmp_path / "gated")
    gated["strategies"]["fix"]["approval"] = "required"
    ws.write_config(base_config({"app": broken, "gated": gated}))
    assert ws.run("recover", "gated").returncode == 3
    (pending,) = json.loads(ws.run("approve", "--json").stdout)

    watch = ws.popen("watch", "--interval", "0.1")
    stop_after.append(watch)
    crons = [ws.popen("recover", "app") for _ in range(10)]
    person = ws.popen("approve", pending["id"], "--as", "erin")
    stop_after.extend([*crons, person])
    for proc in (*crons, person):
        proc.wait(120)
    time.sleep(2)  # the watch keeps running against the spent cap
    watch.send_signal(signal.SIGTERM)

    assert watch.wait(30) == 0
    assert person.returncode == 0
    started = [r for r in ws.events("attempt", "app") if r["outcome"] == "started"]
    assert len(started) == 5  # the cap, exactly, across the watch, cron and people
    blocked = {r["reason"] for r in ws.events("blocked", "app")}
    assert "hourly_cap" in blocked and blocked <= {"hourly_cap", "lock_held"}
    assert (tmp_path / "gated").exists()
    verify = ws.run("history", "--verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
