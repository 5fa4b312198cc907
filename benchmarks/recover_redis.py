"""Time to recover a killed redis-server: `recovery recover redis` vs the restart command alone.

Each round kills redis-server with SIGKILL, starts the clock, then either runs
`recovery recover redis` (a `service: {method: command}` block whose restart command is the
one timed alone) or runs that restart command directly, and stops the clock at the first
PONG. The modes alternate within one run so both see the same machine load.

    .venv/bin/python benchmarks/recover_redis.py --rounds 15

Prints per-mode medians (and p90) of wall time, the median CPU time (user + system) of the
timed process, and the ratio to the restart command alone. Target: `recovery recover redis`
with the chain [restart_container] within the restart command's own time + 0.25 s. Uses a
private redis-server on a free loopback port in a temporary directory; touches nothing else.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

RECOVERY = str(Path(sys.executable).with_name("recovery"))
PING = b"*1\r\n$4\r\nPING\r\n"
TARGET_OVER_RESTART = 0.25  # seconds the CLI may add to the restart command alone
DIRECT = "recovery recover redis, chain [restart_container]"
ALONE = "restart command alone"
Sample = tuple[float, float]  # kill -> first PONG, CPU seconds of the timed process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(PING)
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def wait_for_pong(port: int, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers_ping(port):
            return time.monotonic()
        time.sleep(0.001)
    raise RuntimeError(f"no PONG on port {port} within {timeout}s")


class Server:
    """A daemonized redis-server with its own config, pidfile and data (AOF on)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.conf = root / "redis.conf"
        self.pidfile = root / "redis.pid"
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {root}\npidfile {self.pidfile}\n"
            f'logfile {root / "redis.log"}\nsave ""\nappendonly yes\ndaemonize yes\n'
        )

    @property
    def restart_argv(self) -> list[str]:
        return ["redis-server", str(self.conf)]

    def start(self) -> None:
        subprocess.run(self.restart_argv, check=True)
        wait_for_pong(self.port)

    def kill9(self) -> None:
        pid = int(self.pidfile.read_text().strip())
        os.kill(pid, signal.SIGKILL)
        while Path(f"/proc/{pid}").exists() and not _is_zombie(pid):
            time.sleep(0.001)
        self.pidfile.unlink(missing_ok=True)
        while answers_ping(self.port):
            time.sleep(0.001)


def _is_zombie(pid: int) -> bool:
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


def write_config(path: Path, server: Server, chain: list[str]) -> None:
    component = {
        "kind": "redis",
        "settings": {"url": f"redis://127.0.0.1:{server.port}/0"},
        "service": {"method": "command", "restart": server.restart_argv},
        "chain": chain,
    }
    config = {
        "version": 1,
        "defaults": {"cooldown_seconds": 0, "max_attempts_per_hour": 1000},
        "components": {"redis": component},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def via_recovery(server: Server, config: Path, state: Path) -> Callable[[], Sample]:
    def run() -> Sample:
        server.kill9()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        done = subprocess.run(
            [RECOVERY, "--config", str(config), "--state-dir", str(state), "recover", "redis"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise RuntimeError(f"recovery exited {done.returncode}: {done.stdout}{done.stderr}")
        return wait_for_pong(server.port) - started, _cpu_since(before)

    return run


def restart_alone(server: Server) -> Callable[[], Sample]:
    def run() -> Sample:
        server.kill9()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        subprocess.run(server.restart_argv, check=True)
        return wait_for_pong(server.port) - started, _cpu_since(before)

    return run


def _cpu_since(before: resource.struct_rusage) -> float:
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def summary(samples: list[Sample]) -> str:
    walls = [wall for wall, _ in samples]
    p90 = statistics.quantiles(walls, n=10)[-1] if len(walls) > 1 else walls[0]
    median = statistics.median(walls) * 1000
    cpu = statistics.median(cpu for _, cpu in samples) * 1000
    return (
        f"median {median:8.1f} ms   p90 {p90 * 1000:8.1f} ms   cpu {cpu:7.1f} ms   n={len(walls)}"
    )


def run_rounds(
    modes: dict[str, Callable[[], Sample]], rounds: int, server: Server
) -> dict[str, list[Sample]]:
    samples: dict[str, list[Sample]] = {name: [] for name in modes}
    try:
        for _ in range(rounds):
            for name, run in modes.items():
                samples[name].append(run())
    finally:
        server.kill9()
    return samples


def report(samples: dict[str, list[Sample]], rounds: int) -> None:
    median = {
        name: statistics.median(wall for wall, _ in values) for name, values in samples.items()
    }
    print(f"redis-server kill -9 -> first PONG, {rounds} rounds per mode, interleaved")
    for name, values in samples.items():
        print(f"{name:62s} {summary(values)}   x{median[name] / median[ALONE]:.1f}")
    target = median[ALONE] + TARGET_OVER_RESTART
    verdict = "met" if median[DIRECT] <= target else "missed"
    print(
        f"target: {DIRECT} within the restart alone + {TARGET_OVER_RESTART * 1000:.0f} ms"
        f" = {target * 1000:.1f} ms: {median[DIRECT] * 1000:.1f} ms ({verdict})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("redis-server is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="recover-redis-bench-") as tmp:
        root = Path(tmp)
        server = Server(root)
        server.start()
        direct = root / "direct.yml"
        escalating = root / "escalating.yml"
        write_config(direct, server, ["restart_container"])
        write_config(escalating, server, ["reconnect", "restart_container"])
        modes = {
            ALONE: restart_alone(server),
            DIRECT: via_recovery(server, direct, root / "s1"),
            "recovery recover redis, chain [reconnect, restart_container]": via_recovery(
                server, escalating, root / "s2"
            ),
        }
        samples = run_rounds(modes, args.rounds, server)
    report(samples, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
