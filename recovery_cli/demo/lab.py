"""The demo's lab: a directory the command owns, the services it starts there on free
loopback ports, the config that points the tool at them, and the teardown that removes it
all. Nothing outside the directory and those ports is touched."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recovery_cli.demo.labctl import owned_pid, running

SCRATCH_BYTES = 8 * 1024 * 1024  # the scratch "disk": a tmpfs of 8 MiB
LABCTL = (sys.executable, "-m", "recovery_cli.demo.labctl")


class LabError(Exception):
    """The lab could not be set up (its directory, a service that would not start)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Lab:
    root: Path
    redis_server: str | None = field(default_factory=lambda: shutil.which("redis-server"))
    web_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    scratch_mounted: bool = False
    owned: bool = False  # the directory is the lab's to delete (made, or emptied, by it)

    @property
    def config_path(self) -> Path:
        return self.root / "recovery_config.yml"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def scratch(self) -> Path:
        return self.root / "scratch"

    @property
    def has_redis(self) -> bool:
        return self.redis_server is not None

    def pidfile(self, service: str) -> Path:
        return self.root / "run" / f"{service}.pid"

    def pid(self, service: str) -> int | None:
        return owned_pid(self.root, self.pidfile(service))

    def services(self) -> list[str]:
        return ["redis", "web", "worker"] if self.has_redis else ["web", "worker"]

    # -- setting up -------------------------------------------------------------------

    def create(self) -> None:
        """Make the directory (private, new or empty), then the files and mounts in it."""
        if self.root.exists() and (not self.root.is_dir() or any(self.root.iterdir())):
            raise LabError(f"{self.root} exists and is not an empty directory")
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root = self.root.resolve()
        self.owned = True
        for sub in ("run", "logs", "state", "redis", "scratch"):
            (self.root / sub).mkdir(mode=0o700)
        self.scratch_mounted = _mount_tmpfs(self.scratch, SCRATCH_BYTES)
        (self.root / "lab.json").write_text(json.dumps({"services": self._specs()}, indent=2))
        if self.has_redis:
            (self.root / "redis" / "redis.conf").write_text(self._redis_conf())
        self.config_path.write_text(self.config_text())

    def start(self) -> None:
        for service in self.services():
            self.start_service(service)

    def start_service(self, service: str) -> None:
        done = subprocess.run(
            [*LABCTL, "start", service, str(self.root)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            log = (self.root / "logs" / f"{service}.log").read_text(errors="replace")[-500:]
            raise LabError(f"{service} did not start: {done.stdout.strip()} {log.strip()}")

    def _specs(self) -> dict[str, dict[str, Any]]:
        def spec(argv: list[str], cwd: Path, **extra: Any) -> dict[str, Any]:
            name = extra.pop("name")
            return {
                "argv": argv,
                "cwd": str(cwd),
                "pidfile": str(self.pidfile(name)),
                "log": str(self.root / "logs" / f"{name}.log"),
                **extra,
            }

        specs = {
            "web": spec(
                [
                    sys.executable,
                    "-m",
                    "recovery_cli.demo.web_service",
                    str(self.web_port),
                    str(self.pidfile("web")),
                ],
                self.root,
                name="web",
                health_url=f"http://127.0.0.1:{self.web_port}/health",
            ),
            "worker": spec(
                [sys.executable, "-m", "recovery_cli.demo.worker", str(self.pidfile("worker"))],
                self.root,
                name="worker",
            ),
        }
        if self.redis_server:
            specs["redis"] = spec(
                [self.redis_server, str(self.root / "redis" / "redis.conf")],
                self.root / "redis",
                name="redis",
                daemonizes=True,
            )
        return specs

    def _redis_conf(self) -> str:
        return "\n".join(
            [
                f"port {self.redis_port}",
                "bind 127.0.0.1",
                "protected-mode yes",
                "daemonize yes",
                f"pidfile {self.pidfile('redis')}",
                f"dir {self.root / 'redis'}",
                f"logfile {self.root / 'logs' / 'redis-server.log'}",
                'save ""',
                "appendonly no",
                "",
            ]
        )

    # -- the config -------------------------------------------------------------------

    def config_text(self) -> str:
        header = (
            "# The recovery demo's lab: real services on loopback ports, owned by the demo.\n"
            "# Copy recovery_config.yml from the project for real services; this file shows\n"
            "# the same keys pointed at the lab.\n"
        )
        return header + yaml.safe_dump(self.config(), sort_keys=False, width=100)

    def config(self) -> dict[str, Any]:
        components: dict[str, Any] = {"host": self._host_component()}
        if self.has_redis:
            components["redis"] = self._redis_component()
        components["web"] = self._web_component()
        return {
            "version": 1,
            "host": "demo",
            "defaults": {
                "cooldown_seconds": 300,
                "max_attempts_per_hour": 3,
                "step_timeout_seconds": 20,
                "probe_timeout_seconds": 5,
                "lock_wait_seconds": 10,
                "retry": {"attempts": 1, "initial_delay": 0.1, "max_delay": 1, "jitter": False},
            },
            "audit": {"retention_days": 30},
            "components": components,
        }

    def _labctl(self, action: str, service: str) -> list[str]:
        return [*LABCTL, action, service, str(self.root)]

    def _host_component(self) -> dict[str, Any]:
        disk: dict[str, Any] = {"paths": [str(self.scratch)], "max_used_percent": 80}
        if not self.scratch_mounted:
            disk["max_used_percent"] = 100  # the scratch dir is on the real disk: never full
        return {
            "kind": "system",
            "priority": "critical",
            "settings": {
                "disk": disk,
                # the lab watches its own scratch disk and worker, not this machine's memory
                "memory": {"min_available_percent": 0},
                "file_handles": {"max_used_percent": 100, "max_process_used_percent": 100},
                "processes": [
                    {"name": "worker", "pidfile": str(self.pidfile("worker")), "restart": "respawn"}
                ],
            },
            "chain": ["disk_cleanup", "process_restart"],
            "on_failure": {
                "disk_pressure": ["disk_cleanup"],
                "process_down": ["process_restart"],
            },
            "strategies": {
                "disk_cleanup": {
                    "params": {
                        "roots": [str(self.scratch)],
                        "patterns": ["*.tmp", "*.lock"],
                        "min_age_seconds": 3600,
                        "lock_min_age_seconds": 3600,
                    }
                },
                "process_restart": {"approval": "required"},
            },
        }

    def _redis_component(self) -> dict[str, Any]:
        return {
            "kind": "redis",
            "priority": "critical",
            "depends_on": ["host"],
            "settings": {
                "url": f"redis://127.0.0.1:{self.redis_port}/0",
                "connect_timeout_seconds": 1,
                "socket_timeout_seconds": 1,
            },
            "service": {
                "method": "command",
                "restart": self._labctl("restart", "redis"),
                "pidfile": str(self.pidfile("redis")),
                "ready_timeout_seconds": 10,
            },
            "chain": ["reconnect", "restart_container"],
            "strategies": {"reconnect": {"params": {"max_wait_seconds": 0.5}}},
        }

    def _web_component(self) -> dict[str, Any]:
        return {
            "kind": "command",
            "priority": "high",
            "depends_on": ["host"],
            "max_attempts_per_hour": 2,
            "probe_timeout_seconds": 1,
            "settings": {"probe": self._labctl("probe", "web")},
            "service": {"method": "none", "pidfile": str(self.pidfile("web"))},
            "chain": ["restart"],
            "strategies": {"restart": {"params": {"command": self._labctl("restart", "web")}}},
        }

    # -- tearing down -----------------------------------------------------------------

    def stop(self) -> None:
        """Kill every process working in the lab: the services, and any copy the tool
        respawned (found by their current directory, not only their pidfiles)."""
        for pid in self._lab_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while self._lab_processes() and time.monotonic() < deadline:
            time.sleep(0.02)

    def _lab_processes(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cwd = Path(os.readlink(entry / "cwd"))
            except OSError:
                continue
            if (cwd == self.root or self.root in cwd.parents) and running(int(entry.name)):
                found.append(int(entry.name))
        return found

    def remove(self) -> None:
        """Stop the lab's processes; unmount and delete what the lab made (never a
        directory it was refused)."""
        if not self.owned:
            return
        self.stop()
        if self.scratch_mounted:
            subprocess.run(["umount", str(self.scratch)], capture_output=True, check=False)
            self.scratch_mounted = False
        shutil.rmtree(self.root, ignore_errors=True)


def _mount_tmpfs(path: Path, size: int) -> bool:
    """A private tmpfs at ``path`` (root only; False where it cannot be mounted)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "demo-scratch", str(path)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0
