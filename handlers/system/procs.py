"""Processes the ``system`` handler watches: finding them, remembering how they were
started, restarting them without a supervisor, and their file descriptors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recovery_cli.handlers.system.settings import ProcessSpec as ProcessSpec
from recovery_cli.handlers.util import private_dir

if TYPE_CHECKING:
    import psutil

DELETED_SUFFIX = " (deleted)"
# The launcher exits straight after spawning, so the respawned process is reparented to
# init and outlives this CLI run (and is never left as our zombie).
LAUNCHER = (
    "import json,os,subprocess,sys\n"
    "spec=json.load(sys.stdin)\n"
    "log=open(spec['log'],'ab')\n"
    "p=subprocess.Popen(spec['argv'],cwd=spec['cwd'],env=spec['env'],stdin=subprocess.DEVNULL,"
    "stdout=log,stderr=log,start_new_session=True,close_fds=True)\n"
    "print(p.pid,flush=True)\n"
    "os._exit(0)\n"
)


def find(spec: ProcessSpec) -> list[psutil.Process]:
    """The live processes matching ``spec`` (pidfile first, else name / cmdline)."""
    import psutil

    if spec.pidfile:
        pid = _pid_from(spec.pidfile)
        if pid is None:
            return []
        try:
            proc = psutil.Process(pid)
            return [proc] if proc.status() != psutil.STATUS_ZOMBIE else []
        except psutil.Error:
            return []
    pattern = re.compile(spec.cmdline_pattern) if spec.cmdline_pattern else None
    me = os.getpid()
    return [
        p
        for p in psutil.process_iter(["name", "cmdline", "status"])
        if p.pid != me and _matches(p, spec, pattern)
    ]


def _matches(proc: psutil.Process, spec: ProcessSpec, pattern: re.Pattern[str] | None) -> bool:
    info = proc.info
    if info.get("status") == "zombie":
        return False
    if spec.process_name and info.get("name") != spec.process_name:
        return False
    if pattern is not None:
        return bool(pattern.search(" ".join(info.get("cmdline") or [])))
    return bool(spec.process_name)


def _pid_from(pidfile: str) -> int | None:
    try:
        return int(Path(pidfile).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# --------------------------------------------------------------------------- identity


def identity_path(state_dir: Path, spec: ProcessSpec) -> Path:
    return state_dir / "processes" / f"{spec.name}.json"


def record_identity(state_dir: Path, spec: ProcessSpec, proc: psutil.Process) -> None:
    """Remember argv, cwd and environment while the process runs: once it died they are
    gone from /proc. The file holds environment values, so it is 0600 in a 0700 dir."""
    import psutil

    try:
        with proc.oneshot():
            identity = {
                "pid": proc.pid,
                "create_time": proc.create_time(),
                "argv": proc.cmdline(),
                "cwd": proc.cwd(),
                "env": proc.environ(),
            }
    except psutil.Error:
        return
    if not identity["argv"]:
        return  # kernel thread or already exiting
    path = identity_path(state_dir, spec)
    private_dir(path.parent, parents=True)
    if _same_identity(load_identity(state_dir, spec), identity):
        return
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(identity, out)
    os.replace(tmp, path)


def _same_identity(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    return old is not None and (old.get("pid"), old.get("create_time")) == (
        new["pid"],
        new["create_time"],
    )


def load_identity(state_dir: Path, spec: ProcessSpec) -> dict[str, Any] | None:
    try:
        data = json.loads(identity_path(state_dir, spec).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def still_same(identity: Mapping[str, Any]) -> psutil.Process | None:
    """The recorded process if it still runs: same PID *and* same start time, so a PID
    reused by an unrelated process is never signalled."""
    import psutil

    try:
        proc = psutil.Process(int(identity["pid"]))
        if abs(proc.create_time() - float(identity["create_time"])) < 0.01:
            return proc
    except (psutil.Error, KeyError, ValueError, TypeError):
        pass
    return None


def terminate(proc: psutil.Process, grace: float) -> str:
    """SIGTERM, wait up to ``grace``, then SIGKILL; returns what it took."""
    import psutil

    try:
        proc.terminate()
        proc.wait(timeout=grace)
        return "terminated"
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
        return "killed after grace period"
    except psutil.NoSuchProcess:
        return "already gone"


def respawn(identity: Mapping[str, Any], log_path: Path, timeout: float) -> int:
    """Start the recorded argv in its recorded cwd and environment, detached; its PID."""
    request = {
        "argv": list(identity["argv"]),
        "cwd": identity.get("cwd") or "/",
        "env": dict(identity.get("env") or {}),
        "log": str(log_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise OSError(f"respawn failed: {done.stderr.strip().splitlines()[-1:]}")
    return int(done.stdout.strip())


def send_reclaim_signal(proc: psutil.Process, name: str) -> None:
    proc.send_signal(signal.Signals[name])


# --------------------------------------------------------------------------- descriptors


@dataclass(frozen=True)
class DeletedOpenFile:
    pid: int
    fd: int
    path: str
    size: int
    inode: tuple[int, int] = (0, 0)  # (st_dev, st_ino) when found


def deleted_open_files(deadline: float, pids: list[int] | None = None) -> list[DeletedOpenFile]:
    """Regular files unlinked but still held open: their space cannot be freed by deleting."""
    import stat

    found: list[DeletedOpenFile] = []
    for pid in pids if pids is not None else _all_pids():
        if time.monotonic() >= deadline:
            break
        for fd, target in _fd_targets(pid):
            if not target.endswith(DELETED_SUFFIX):
                continue
            try:
                st = os.stat(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 0:
                path = target[: -len(DELETED_SUFFIX)]
                found.append(DeletedOpenFile(pid, fd, path, st.st_size, (st.st_dev, st.st_ino)))
    return found


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _fd_targets(pid: int) -> list[tuple[int, str]]:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    targets = []
    for fd in fds:
        try:
            targets.append((int(fd), os.readlink(f"/proc/{pid}/fd/{fd}")))
        except OSError:
            continue
    return targets


def fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def top_fd_holders(limit: int, deadline: float) -> list[tuple[int, str, int]]:
    """(pid, name, open descriptors) of the processes holding the most descriptors."""
    counts = []
    for pid in _all_pids():
        if time.monotonic() >= deadline:
            break
        count = fd_count(pid)
        if count:
            counts.append((pid, _comm(pid), count))
    counts.sort(key=lambda item: item[2], reverse=True)
    return counts[:limit]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def system_file_handles() -> tuple[int, int] | None:
    """(allocated, max) from ``/proc/sys/fs/file-nr``."""
    try:
        allocated, _, maximum = Path("/proc/sys/fs/file-nr").read_text().split()[:3]
        return int(allocated), int(maximum)
    except (OSError, ValueError):
        return None


def truncate_deleted(item: DeletedOpenFile) -> None:
    """Give back the space of a deleted-but-open file by truncating it through /proc."""
    fd = os.open(f"/proc/{item.pid}/fd/{item.fd}", os.O_WRONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != item.inode or st.st_nlink != 0:
            raise OSError(f"pid {item.pid} fd {item.fd} now names another file")  # fd reused
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)
