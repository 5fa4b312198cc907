"""Time to recover a killed redis-server: `recovery watch` against supervisord and monit.

Each mode has its own private redis-server (AOF on) on a free loopback port in a temporary
directory, kept alive by its own supervisor; each round kills it with SIGKILL and measures to
the first PONG from the new process. Rounds go mode after mode, so every mode sees the same
machine load.

    .venv/bin/python benchmarks/mttr_peers.py --rounds 10

Modes: the restart command alone (the floor); `recovery watch` with the service block's
`pidfile` (a pidfd sees the exit at once); `recovery watch --interval 1` without a pidfile
(polling); supervisord (`autorestart=true`, `startsecs=0`); monit (`set daemon 1`, a pidfile
and a port check). A peer that is not installed is reported as such: supervisord from PyPI
(`python3 -m venv ~/.cache/recovery-cli/peers-venv &&
~/.cache/recovery-cli/peers-venv/bin/pip install supervisor`, or on the PATH), monit from
Debian (`apt-get install monit`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recover_redis import RECOVERY, Server, wait_for_pong

PEERS_VENV = Path.home() / ".cache" / "recovery-cli" / "peers-venv" / "bin"
Round = Callable[[], float]


def kill_and_time(server: Server) -> float:
    """SIGKILL the server, then seconds from the kill to the first PONG of a new one."""
    pid = int(server.pidfile.read_text().strip())
    os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    return wait_for_pong(server.port, timeout=60) - started


def wait_for_new_pidfile(server: Server, old: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if int(server.pidfile.read_text().strip()) != old:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.01)


def timed_round(server: Server) -> float:
    old = int(server.pidfile.read_text().strip())
    seconds = kill_and_time(server)
    wait_for_new_pidfile(server, old)
    time.sleep(0.5)  # let the supervisor settle before the next round
    return seconds


def restart_alone(server: Server) -> Round:
    def run() -> float:
        pid = int(server.pidfile.read_text().strip())
        server.kill9()
        started = time.monotonic()
        subprocess.run(server.restart_argv, check=True)
        seconds = wait_for_pong(server.port) - started
        wait_for_new_pidfile(server, pid)
        return seconds

    return run


def watch_config(path: Path, server: Server, pidfile: bool) -> Path:
    service: dict[str, object] = {"method": "command", "restart": server.restart_argv}
    if pidfile:
        service["pidfile"] = str(server.pidfile)
    component = {
        "kind": "redis",
        "settings": {"url": f"redis://127.0.0.1:{server.port}/0"},
        "service": service,
        "chain": ["restart_container"],
    }
    config = {
        "version": 1,
        "defaults": {"cooldown_seconds": 0, "max_attempts_per_hour": 1000},
        "components": {"redis": component},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_watch(
    root: Path, server: Server, pidfile: bool, interval: float
) -> subprocess.Popen[bytes]:
    config = watch_config(root / f"watch-{server.port}.yml", server, pidfile)
    argv = [RECOVERY, "--config", str(config), "--state-dir", str(root / f"state-{server.port}")]
    argv += ["watch", "--interval", str(interval)]
    log = open(root / f"watch-{server.port}.log", "wb")  # noqa: SIM115 - kept for the process
    return subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)


def supervisord_binary() -> str | None:
    found = shutil.which("supervisord")
    if found:
        return found
    candidate = PEERS_VENV / "supervisord"
    return str(candidate) if candidate.exists() else None


def start_supervisord(root: Path, binary: str) -> tuple[subprocess.Popen[bytes], Server]:
    home = root / "supervisord"
    home.mkdir()
    server = Server(home)
    server.conf.write_text(server.conf.read_text().replace("daemonize yes", "daemonize no"))
    conf = home / "supervisord.conf"
    conf.write_text(
        f"[supervisord]\nnodaemon=true\nlogfile={home / 'supervisord.log'}\n"
        f"pidfile={home / 'supervisord.pid'}\n\n"
        f"[program:redis]\ncommand=redis-server {server.conf}\nautorestart=true\n"
        "startsecs=0\nstartretries=100\n"
    )
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for_pong(server.port)
    wait_for_new_pidfile(server, -1)
    return proc, server


def start_monit(root: Path, binary: str) -> tuple[subprocess.Popen[bytes], Server]:
    home = root / "monit"
    home.mkdir()
    server = Server(home)
    server.start()
    rc = home / "monitrc"
    rc.write_text(
        f"set daemon 1\nset logfile {home / 'monit.log'}\nset idfile {home / 'monit.id'}\n"
        f"set statefile {home / 'monit.state'}\n"
        f"check process redis with pidfile {server.pidfile}\n"
        f'  start program = "/usr/bin/redis-server {server.conf}"\n'
        f"  if failed host 127.0.0.1 port {server.port} then restart\n"
    )
    rc.chmod(0o600)
    proc = subprocess.Popen(
        [binary, "-I", "-c", str(rc)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(2)  # monit's first cycle
    return proc, server


def summary(samples: list[float]) -> tuple[float, float]:
    median = statistics.median(samples)
    p90 = statistics.quantiles(samples, n=10)[-1] if len(samples) > 1 else samples[0]
    return median, p90


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the directory and its logs")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("redis-server is not installed", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="mttr-peers-")
    try:
        root = Path(tmp)
        modes: dict[str, Round] = {}
        stops: list[Callable[[], None]] = []
        try:
            modes.update(_recovery_modes(root, stops))
            modes.update(_peer_modes(root, stops))
            samples: dict[str, list[float]] = {name: [] for name in modes}
            for _ in range(args.rounds):
                for name, run in modes.items():
                    try:
                        samples[name].append(run())
                    except RuntimeError as exc:
                        raise RuntimeError(f"{name}: {exc}; logs in {root}") from None
        finally:
            for stop in reversed(stops):
                with contextlib.suppress(OSError, ValueError):
                    stop()
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    _report(samples, args.rounds)
    return 0


def _recovery_modes(root: Path, stops: list[Callable[[], None]]) -> dict[str, Round]:
    modes: dict[str, Round] = {}
    alone = Server(_dir(root, "alone"))
    alone.start()
    stops.append(alone.kill9)
    modes["restart command alone"] = restart_alone(alone)
    for label, pidfile, interval in (
        ("recovery watch (pidfd, interval 30 s)", True, 30.0),
        ("recovery watch --interval 1 (polling)", False, 1.0),
    ):
        server = Server(_dir(root, f"watch-{int(pidfile)}"))
        server.start()
        proc = start_watch(root, server, pidfile, interval)
        stops += [server.kill9, _terminate(proc)]
        time.sleep(3)  # the watch's first run
        modes[label] = _bind(timed_round, server)
    return modes


def _peer_modes(root: Path, stops: list[Callable[[], None]]) -> dict[str, Round]:
    modes: dict[str, Round] = {}
    supervisord = supervisord_binary()
    if supervisord is None:
        print("supervisord is not installed: skipped (see this script's docstring)")
    else:
        proc, server = start_supervisord(root, supervisord)
        stops += [_terminate(proc)]
        modes["supervisord 4 (autorestart, startsecs=0)"] = _bind(timed_round, server)
    monit = shutil.which("monit")
    if monit is None:
        print("monit is not installed: skipped (apt-get install monit)")
    else:
        proc, server = start_monit(root, monit)
        stops += [_terminate(proc), server.kill9]
        modes["monit (set daemon 1, port check)"] = _bind(timed_round, server)
    return modes


def _dir(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir()
    return path


def _bind(fn: Callable[[Server], float], server: Server) -> Round:
    return lambda: fn(server)


def _terminate(proc: subprocess.Popen[bytes]) -> Callable[[], None]:
    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()

    return stop


def _report(samples: dict[str, list[float]], rounds: int) -> None:
    floor = statistics.median(samples["restart command alone"])
    print(f"redis-server kill -9 -> first PONG, {rounds} rounds per mode, interleaved")
    for name, values in samples.items():
        median, p90 = summary(values)
        print(
            f"{name:45s} median {median * 1000:8.1f} ms   p90 {p90 * 1000:8.1f} ms   "
            f"x{median / floor:6.1f} the restart alone"
        )


if __name__ == "__main__":
    sys.exit(main())
