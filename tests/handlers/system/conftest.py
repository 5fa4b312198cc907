"""The system kind's servers: stand-in daemons started per test, killed at teardown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemons import DAEMON, Daemon, alive, wait_for


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    """Start daemons; every one (and anything respawned from its pidfile) dies at teardown."""
    started: list[Daemon] = []
    script = tmp_path / "daemon.py"
    script.write_text(DAEMON)

    def start(name: str, mode: str = "plain", amount: int = 0) -> Daemon:
        workdir = tmp_path / f"{name}-cwd"
        workdir.mkdir()
        pidfile, info = tmp_path / f"{name}.pid", tmp_path / f"{name}.json"
        env = {"PATH": os.environ["PATH"], "MARKER": f"marker-{name}"}
        argv = [sys.executable, str(script), str(pidfile), str(info), mode, str(amount)]
        proc = subprocess.Popen(argv, cwd=workdir, env=env, start_new_session=True)
        daemon = Daemon(pidfile, info, proc)
        started.append(daemon)
        assert wait_for(lambda: info.exists() and pidfile.exists())
        return daemon

    yield start
    for daemon in started:
        for pid in {daemon.proc.pid, int(daemon.pidfile.read_text())}:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        daemon.proc.wait(5)
