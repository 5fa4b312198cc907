"""The process's view of the world, injected so tests never patch globals."""

from __future__ import annotations

import getpass
import os
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class Environment:
    environ: Mapping[str, str]
    clock: Clock = field(default_factory=SystemClock)
    interactive: bool = False
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)

    @classmethod
    def from_process(cls) -> Environment:
        """``RECOVERY_HOST`` names the host for records and alert labels (containers, tests);
        else the machine's host name."""
        environ = dict(os.environ)
        return cls(
            environ=environ,
            interactive=sys.stdin.isatty() and sys.stdout.isatty(),
            host=environ.get("RECOVERY_HOST") or socket.gethostname(),
        )

    def operator(self, explicit: str | None = None) -> str:
        """Who is acting: --as, else the sudo caller, else the login user."""
        if explicit is not None:
            if not explicit.strip():
                from recovery_cli.errors import UsageError

                raise UsageError("--as needs a name")
            return explicit.strip()
        for var in ("SUDO_USER", "USER", "LOGNAME"):
            if self.environ.get(var):
                return self.environ[var]
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return f"uid:{os.getuid()}"

    @property
    def trigger(self) -> str:
        return self.environ.get("RECOVERY_TRIGGER") or ("manual" if self.interactive else "cron")
