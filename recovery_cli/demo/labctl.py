"""Control of the lab's services, as the lab's config calls it: probe, start, restart.

Usage: python -m recovery_cli.demo.labctl probe|start|restart SERVICE LAB_DIR
The probe follows the Nagios convention (0 healthy, 2 down). Only processes working in
LAB_DIR (their current directory is inside it) are ever signalled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

READY_SECONDS = 10.0


def service_spec(lab: Path, name: str) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = json.loads((lab / "lab.json").read_text())["services"]
    return services[name]


def process_state(pid: int | str) -> str | None:
    """The state letter of ``/proc/PID/stat`` (``R``, ``S``, ``T``, ``Z``...), None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def running(pid: int) -> bool:
    """Alive and not a zombie (a killed service may wait for its parent to reap it)."""
    return process_state(pid) not in (None, "Z", "X")


def owned_pid(lab: Path, pidfile: Path) -> int | None:
    """The PID in ``pidfile`` if that process runs inside ``lab``, else None."""
    try:
        pid = int(pidfile.read_text().split()[0])
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except (OSError, ValueError, IndexError):
        return None
    return pid if cwd == lab or lab in cwd.parents else None


def probe(spec: dict[str, Any]) -> int:
    """GET the health URL. No timeout of its own worth the name: a frozen service is for the
    tool's probe timeout to catch (``probe_timeout``), as it would be in production."""
    try:
        with urllib.request.urlopen(spec["health_url"], timeout=30) as answer:
            print(f"{spec['health_url']}: HTTP {answer.status}")
            return 0
    except OSError as exc:
        print(f"{spec['health_url']}: {exc}")
        return 2


def stop(lab: Path, spec: dict[str, Any]) -> None:
    pid = owned_pid(lab, Path(spec["pidfile"]))
    if pid is None:
        return
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + READY_SECONDS
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def start(lab: Path, spec: dict[str, Any]) -> int:
    """Start the service detached (its own session, output to its log), then wait for its
    pidfile to name a live process of the lab."""
    pidfile = Path(spec["pidfile"])
    pidfile.unlink(missing_ok=True)
    with open(spec["log"], "ab") as log:
        child = subprocess.Popen(
            spec["argv"],
            cwd=spec["cwd"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    if spec.get("daemonizes"):
        child.wait(timeout=READY_SECONDS)
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        pid = owned_pid(lab, pidfile)
        if pid is not None and running(pid):
            print(f"started {spec['argv'][0]} (pid {pid})")
            return 0
        time.sleep(0.01)
    print(f"{spec['argv'][0]} wrote no pidfile within {READY_SECONDS:g}s")
    return 1


def main(argv: list[str]) -> int:
    action, name, lab = argv[0], argv[1], Path(argv[2]).resolve()
    spec = service_spec(lab, name)
    if action == "probe":
        return probe(spec)
    if action == "restart":
        stop(lab, spec)
    return start(lab, spec)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
