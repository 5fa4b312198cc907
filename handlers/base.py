"""The contract between the orchestrator and every component handler.

Handlers import only this module, the standard library and their own client library
(lazily, inside the function that needs it). The orchestrator builds a
``ComponentContext`` from the validated config and hands it to the handler's constructor.
"""

from __future__ import annotations

import contextlib
import enum
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

DETAIL_LIMIT = 2000


class Health(enum.StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass(frozen=True)
class ProbeResult:
    health: Health
    failure_type: str | None = None
    detail: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.health is Health.HEALTHY

    @classmethod
    def ok(cls, detail: str = "", metrics: Mapping[str, float] | None = None) -> ProbeResult:
        return cls(Health.HEALTHY, None, detail, metrics or {})

    @classmethod
    def down(cls, failure_type: str, detail: str = "") -> ProbeResult:
        return cls(Health.DOWN, failure_type, trim(detail))

    @classmethod
    def degraded(cls, failure_type: str, detail: str = "") -> ProbeResult:
        return cls(Health.DEGRADED, failure_type, trim(detail))


@dataclass(frozen=True)
class StrategyResult:
    """What one strategy run did. ``ok`` means the action itself succeeded; whether the
    component is healthy afterwards is decided by the orchestrator's re-probe."""

    ok: bool
    detail: str = ""
    failure_type: str | None = None
    retryable: bool = False
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def success(cls, detail: str = "", **data: Any) -> StrategyResult:
        return cls(True, trim(detail), None, False, data)

    @classmethod
    def failure(
        cls, failure_type: str, detail: str = "", *, retryable: bool = False, **data: Any
    ) -> StrategyResult:
        return cls(False, trim(detail), failure_type, retryable, data)


@dataclass(frozen=True)
class Check:
    """One precondition reported by ``preflight`` (and ``recovery test``)."""

    name: str
    ok: bool
    detail: str = ""


class ServiceControl(Protocol):
    """Restart/stop/start of the process behind a component, whatever runs it
    (a command, systemd or the Docker Engine). Built by the core from the ``service:``
    block and handed to handlers through ``StrategyContext.service``."""

    method: str

    def restart(self, timeout: float) -> StrategyResult: ...

    def stop(self, timeout: float) -> StrategyResult: ...

    def start(self, timeout: float) -> StrategyResult: ...

    def preflight(self) -> list[Check]: ...


@dataclass(frozen=True)
class ComponentContext:
    """Everything a handler knows about its component, built from the validated config."""

    name: str
    settings: Mapping[str, Any]
    strategy_params: Mapping[str, Mapping[str, Any]]
    state_dir: Path
    environ: Mapping[str, str]
    probe_timeout: float = 10.0

    def secret(self, env_key: str) -> str | None:
        """The value of the environment variable named by ``settings[env_key]``."""
        var = self.settings.get(env_key)
        if not var:
            return None
        return self.environ.get(str(var))

    def params_for(self, strategy: str) -> Mapping[str, Any]:
        return self.strategy_params.get(strategy, {})


@dataclass(frozen=True)
class StrategyContext:
    """Per-step inputs: the merged params, the failure that triggered the chain, the step's
    deadline, and the shared service control (``None`` when the component has none)."""

    component: ComponentContext
    params: Mapping[str, Any]
    failure_type: str | None
    timeout: float
    dry_run: bool = False
    service: ServiceControl | None = None
    deadline: float = 0.0

    def remaining(self) -> float:
        """Seconds left before this step's deadline (never negative)."""
        if not self.deadline:
            return self.timeout
        return max(0.0, self.deadline - time.monotonic())


Strategy = Callable[[StrategyContext], StrategyResult]


@runtime_checkable
class Handler(Protocol):
    kind: ClassVar[str]

    def probe(self) -> ProbeResult: ...

    def strategies(self) -> Mapping[str, Strategy]: ...

    def preflight(self, strategy: str) -> list[Check]: ...


class SettingsError(ValueError):
    """A handler's ``settings`` (or a strategy's params) are invalid. ``key`` is the path
    below the component, e.g. ``settings.url`` or ``strategies.flush_corrupted.params``."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (fsync of the file is not enough)."""
    import os

    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def trim(text: str, limit: int = DETAIL_LIMIT) -> str:
    """Bound text that goes into audit records; keep the head, which says what happened."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return text[: limit - 15] + " …[truncated]"


@dataclass(frozen=True)
class CommandOutcome:
    returncode: int | None
    output: str
    timed_out: bool
    missing: bool = False

    @property
    def first_line(self) -> str:
        for line in self.output.splitlines():
            if line.strip():
                return line.strip()
        return ""


def run_command(
    argv: Sequence[str],
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> CommandOutcome:
    """Run an argv list without a shell, with a timeout, capturing stdout+stderr.

    The child gets its own session so that a timeout kills the whole process group."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        return CommandOutcome(None, f"{argv[0]}: {exc.strerror}", False, missing=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:
            out, _ = proc.communicate(timeout=2)
        except subprocess.TimeoutExpired:  # a grandchild left its own group holding the pipe
            out = b""
            if proc.stdout is not None:
                proc.stdout.close()
        return CommandOutcome(None, out.decode(errors="replace"), True)
    return CommandOutcome(proc.returncode, out.decode(errors="replace"), False)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    import os
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


class BaseHandler:
    """Shared constructor and defaults; concrete handlers subclass it and satisfy ``Handler``."""

    kind: ClassVar[str]

    def __init__(self, context: ComponentContext) -> None:
        self.context = context

    @classmethod
    def validate_config(
        cls, settings: Mapping[str, Any], strategy_params: Mapping[str, Mapping[str, Any]]
    ) -> list[SettingsError]:
        """Check the component's ``settings`` and each strategy's ``params`` at config load
        time (cheap, no I/O). Keys are relative to the component: ``settings.url``."""
        return []

    def probe(self) -> ProbeResult:
        raise NotImplementedError

    def strategies(self) -> Mapping[str, Strategy]:
        raise NotImplementedError

    def preflight(self, strategy: str) -> list[Check]:
        return []
