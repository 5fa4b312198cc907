"""A real redis-server for tests: a free loopback port, a private directory, a child process.

``RedisServer.start()`` runs redis-server in the foreground (``--daemonize no``) as our
child; ``stop()`` ends it and any copy started later through ``restart_argv`` (which
daemonizes, like a service manager's start command would). Nothing else is ever touched:
a pid is signalled only if it is a redis-server naming this server's config file or port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from recovery_cli.handlers.base import ComponentContext, ServiceControl, StrategyContext
from recovery_cli.handlers.redis.handler import RedisHandler
from tests.support.net import free_port, wait_for_port

REDIS_SERVER = "redis-server"


@dataclass
class RedisServer:
    directory: Path
    port: int = field(default_factory=free_port)
    options: Sequence[str] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_file(self) -> Path:
        return self.directory / "redis.conf"

    @property
    def pidfile(self) -> Path:
        return self.directory / "redis.pid"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def write_config(self) -> None:
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.directory}",
            f"pidfile {self.pidfile}",
            f"logfile {self.directory / 'redis.log'}",
            'save ""',
            "appendonly no",
            *self.options,
        ]
        self.config_file.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.write_config()
        self.process = subprocess.Popen(
            [REDIS_SERVER, str(self.config_file), "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while (
            self.process is not None and self.process.poll() is None and time.monotonic() < deadline
        ):
            try:
                wait_for_port(self.port, 0.2)
                return
            except TimeoutError:
                continue
        log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"redis-server on port {self.port} did not start:\n{log}")

    def restart_argv(self) -> list[str]:
        """What a `service: {method: command}` block runs to bring this server back: the same
        config, daemonized so the command returns once the server is started."""
        return [REDIS_SERVER, str(self.config_file), "--daemonize", "yes"]

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, protocol=2, socket_timeout=5, **kwargs)  # type: ignore[arg-type]

    def pid(self) -> int | None:
        """The pid of whichever copy of this server runs now (child or daemonized)."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid is not None and self._is_ours(pid):
            return pid
        if self.process is not None and self.process.poll() is None:
            return self.process.pid
        return None

    def kill9(self) -> None:
        pid = self.pid()
        assert pid is not None, "the test server is not running"
        os.kill(pid, signal.SIGKILL)
        self._reap(pid)
        deadline = time.monotonic() + 5
        while self._is_ours(pid) and time.monotonic() < deadline:
            time.sleep(0.01)

    def signal(self, signum: int) -> None:
        pid = self.pid()
        assert pid is not None, "the test server is not running"
        os.kill(pid, signum)

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._reap(pid)
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait(timeout=10)

    def _reap(self, pid: int) -> None:
        if self.process is not None and self.process.pid == pid:
            self.process.wait(timeout=10)

    def _is_ours(self, pid: int) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        # redis-server rewrites its title to "redis-server 127.0.0.1:PORT" once started.
        names_us = (
            str(self.config_file).encode() in cmdline
            or f"127.0.0.1:{self.port}".encode() in cmdline
        )
        return cmdline.startswith(b"redis-server") and names_us and "State:\tZ" not in status


@contextlib.contextmanager
def running_redis(directory: Path, *options: str) -> Iterator[RedisServer]:
    server = RedisServer(directory, options=options)
    try:
        yield server.start()
    finally:
        server.stop()


def redis_handler(
    url: str,
    state_dir: Path,
    settings: dict[str, Any] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    environ: dict[str, str] | None = None,
    probe_timeout: float = 4.0,
) -> RedisHandler:
    """A RedisHandler the way the core builds one, for the server at ``url``."""
    context = ComponentContext(
        name="redis",
        settings={"url": url, **(settings or {})},
        strategy_params=params or {},
        state_dir=state_dir,
        environ=environ or {},
        probe_timeout=probe_timeout,
    )
    return RedisHandler(context)


def strategy_context(
    handler: RedisHandler,
    strategy: str,
    failure_type: str | None = None,
    timeout: float = 20.0,
    dry_run: bool = False,
    service: ServiceControl | None = None,
) -> StrategyContext:
    return StrategyContext(
        component=handler.context,
        params=handler.context.params_for(strategy),
        failure_type=failure_type,
        timeout=timeout,
        dry_run=dry_run,
        service=service,
        deadline=time.monotonic() + timeout,
    )


# Start options that make loading an RDB slow enough to observe (about 50 µs per key).
SLOW_LOADING = ("key-load-delay 50", "loading-process-events-interval-bytes 1024")


def save_dataset(directory: Path, keys: int) -> None:
    """Leave an RDB with ``keys`` small keys in ``directory``, for a server that then loads it."""
    with running_redis(directory, "enable-debug-command local") as server:
        client = server.client()
        client.execute_command("DEBUG", "POPULATE", keys, "key", 100)  # type: ignore[no-untyped-call]
        client.save()
        client.close()
