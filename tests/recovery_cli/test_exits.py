"""Which processes ``watch`` holds a pidfd on, and that their exit is seen at once: real
processes; systemd's MainPID through the test suite's stand-in for systemctl."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from recovery_cli.config import parse_config
from recovery_cli.exits import ExitWatch, component_pids, read_pid
from tests.support.fake_docker import FakeContainer, FakeEngine

FAKE_SYSTEMCTL = Path(__file__).parents[1] / "support" / "fake_systemctl"


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "1000"])
    yield proc
    proc.kill()
    proc.wait()


def component(**fields: object) -> object:
    config = {
        "version": 1,
        "components": {
            "app": {
                "kind": "command",
                "settings": {"probe": ["true"]},
                "chain": ["fix"],
                "strategies": {"fix": {"params": {"command": ["true"]}}},
                **fields,
            }
        },
    }
    return parse_config(yaml.safe_dump(config), "test.yml").components["app"]


def test_the_exit_of_a_watched_process_is_seen_at_once(
    sleeper: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    pidfile = tmp_path / "app.pid"
    pidfile.write_text(f"{sleeper.pid}\n")
    app = component(service={"method": "command", "start": ["true"], "pidfile": str(pidfile)})
    watch = ExitWatch()
    assert watch.track("app", component_pids(app, os.environ)) == [sleeper.pid]
    assert watch.wait(0.05) == []

    sleeper.send_signal(signal.SIGKILL)
    started = time.monotonic()
    ended = watch.wait(5)

    assert ended == ["app"] and time.monotonic() - started < 1
    assert watch.fds == {}
    watch.close()


def test_systemd_main_pid_is_watched(
    sleeper: subprocess.Popen[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{FAKE_SYSTEMCTL}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SYSTEMCTL_UNITS", "app")
    monkeypatch.setenv("FAKE_SYSTEMCTL_STATE", str(tmp_path))
    (tmp_path / "app.MainPID").write_text(f"{sleeper.pid}\n")
    app = component(service={"method": "systemd", "unit": "app"})

    assert component_pids(app, os.environ) == [sleeper.pid]
    (tmp_path / "app.MainPID").write_text("0\n")  # the unit is not running
    assert component_pids(app, os.environ) == []


def test_a_docker_containers_state_pid_is_watched_on_a_local_engine_only(
    sleeper: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    with FakeEngine(tmp_path / "docker.sock") as engine:
        box = engine.add(FakeContainer("app", pid=sleeper.pid))
        local = component(service={"method": "docker", "container": "app", "base_url": engine.url})
        remote = component(
            service={"method": "docker", "container": "app", "base_url": "tcp://10.9.9.9:2375"}
        )

        assert component_pids(local, os.environ) == [sleeper.pid]
        watch = ExitWatch()
        watch.track("app", component_pids(local, os.environ))
        sleeper.send_signal(signal.SIGKILL)
        assert watch.wait(5) == ["app"]
        watch.close()
        box.status = "exited"
        assert component_pids(local, os.environ) == []
        asked = len(engine.requests)
        assert component_pids(remote, os.environ) == []  # its pids are another machine's
        assert len(engine.requests) == asked
    gone = component(service={"method": "docker", "container": "app", "base_url": engine.url})
    assert component_pids(gone, os.environ) == []  # the engine is not there


def test_a_system_component_watches_its_processes_pidfiles(
    sleeper: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    pidfile = tmp_path / "worker.pid"
    pidfile.write_text(str(sleeper.pid))
    config = {
        "version": 1,
        "components": {
            "system": {
                "kind": "system",
                "settings": {"processes": [{"name": "worker", "pidfile": str(pidfile)}]},
                "chain": ["process_restart"],
            }
        },
    }
    system = parse_config(yaml.safe_dump(config), "test.yml").components["system"]

    assert component_pids(system, os.environ) == [sleeper.pid]


@pytest.mark.parametrize(
    "content", ["", "not a pid", "1", "-5", "99999999999999999999", "12 extra"]
)
def test_a_pidfile_that_names_no_usable_process_is_not_watched(
    tmp_path: Path, content: str
) -> None:
    pidfile = tmp_path / "app.pid"
    pidfile.write_text(content)
    expected = 12 if content == "12 extra" else None
    assert read_pid(str(pidfile)) == expected


def test_a_pidfile_that_is_a_symlink_or_a_fifo_is_not_read(tmp_path: Path) -> None:
    target = tmp_path / "real.pid"
    target.write_text(str(os.getpid()))
    (tmp_path / "link.pid").symlink_to(target)
    os.mkfifo(tmp_path / "fifo.pid")

    assert read_pid(str(tmp_path / "link.pid")) is None
    assert read_pid(str(tmp_path / "fifo.pid")) is None  # and it does not block


def test_a_zombie_is_not_watched(tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # exited, not yet reaped: a zombie
        state = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            break
        time.sleep(0.01)
    watch = ExitWatch()
    try:
        assert watch.track("app", [child.pid]) == []
    finally:
        watch.close()
        child.wait()
