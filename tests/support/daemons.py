"""Stand-in daemons for the system kind's tests: real processes with a pidfile, and the
settings under which the real host always probes healthy."""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RELAXED = {
    "disk": {"paths": ["/"], "max_used_percent": 100, "min_free_bytes": 0},
    "memory": {"min_available_percent": 0},
    "file_handles": {"max_used_percent": 100, "max_process_used_percent": 100},
}


# A stand-in daemon: writes its pidfile and what it was started with, answers SIGUSR1,
# optionally lowers its own descriptor limit and opens many files, or holds a deleted one.
DAEMON = textwrap.dedent(
    """
    import json, os, resource, signal, sys, time
    pidfile, info, mode, amount = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    held = []
    if mode == "fds":
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 4096))
        held = [open(os.devnull) for _ in range(amount)]
    if mode == "deleted":
        path = info + ".data"
        handle = open(path, "wb"); handle.write(b"x" * amount); handle.flush(); os.unlink(path)
        held = [handle]
    signal.signal(signal.SIGUSR1, lambda *a: open(info + ".usr1", "w").write("reclaim"))
    with open(info, "w") as out:
        json.dump({"pid": os.getpid(), "cwd": os.getcwd(), "marker": os.environ.get("MARKER")}, out)
    with open(pidfile + ".tmp", "w") as out:
        out.write(str(os.getpid()))
    os.replace(pidfile + ".tmp", pidfile)
    while True:
        time.sleep(1)
    """
)


@dataclass
class Daemon:
    pidfile: Path
    info: Path
    proc: subprocess.Popen[bytes]

    def started(self) -> dict[str, Any]:
        return dict(json.loads(self.info.read_text()))

    @property
    def pid(self) -> int:
        return int(self.pidfile.read_text())


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
