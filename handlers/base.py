"""The contract between the orchestrator and every component handler.

Handlers import only this module, the standard library and their own client library
(lazily, inside the function that needs it). The orchestrator builds a
``ComponentContext`` from the validated config and hands it to the handler's constructor.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from recovery_cli.handlers.util import trim


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

    def __post_init__(self) -> None:
        _trim_detail(self)

    @property
    def healthy(self) -> bool:
        return self.health is Health.HEALTHY

    @classmethod
    def ok(cls, detail: str = "", metrics: Mapping[str, float] | None = None) -> ProbeResult:
        return cls(Health.HEALTHY, None, detail, metrics or {})

    @classmethod
    def down(cls, failure_type: str, detail: str = "") -> ProbeResult:
        return cls(Health.DOWN, failure_type, detail)

    @classmethod
    def degraded(cls, failure_type: str, detail: str = "") -> ProbeResult:
        return cls(Health.DEGRADED, failure_type, detail)


@dataclass(frozen=True)
class StrategyResult:
    """What one strategy run did. ``ok`` means the action itself succeeded; whether the
    component is healthy afterwards is decided by the orchestrator's re-probe."""

    ok: bool
    detail: str = ""
    failure_type: str | None = None
    retryable: bool = False
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _trim_detail(self)

    @classmethod
    def success(cls, detail: str = "", **data: Any) -> StrategyResult:
        return cls(True, detail, None, False, data)

    @classmethod
    def failure(
        cls, failure_type: str, detail: str = "", *, retryable: bool = False, **data: Any
    ) -> StrategyResult:
        return cls(False, detail, failure_type, retryable, data)


def _trim_detail(result: ProbeResult | StrategyResult) -> None:
    """Every way of building a result bounds its detail: it goes into audit records."""
    object.__setattr__(result, "detail", trim(result.detail))


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
    read_only: bool = False  # status and dry runs: keep nothing on disk

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


class SettingsError(ValueError):
    """A handler's ``settings`` (or a strategy's params) are invalid. ``key`` is the path
    below the component, e.g. ``settings.url`` or ``strategies.flush_corrupted.params``."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


class BaseHandler:
    """The one contract: every kind subclasses it (``kind``, ``probe``, ``strategies``,
    ``preflight``); the core calls nothing else on a handler."""

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


def number_errors(
    key: str, value: object, low: float, high: float, *, above: bool = False, whole: bool = False
) -> list[SettingsError]:
    """``[]`` when ``value`` is a finite number (not true/false) from ``low`` (exclusive when
    ``above``) to ``high``, and a whole one when ``whole``; else the one error saying so.
    Every number a handler reads from the config goes through here: an unbounded one
    validates and then crashes (``time.sleep(1e20)``) or waits forever (``.inf``)."""
    import math

    valid = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(value, float):
        valid = not whole and math.isfinite(value)
    if valid and isinstance(value, int | float):
        valid = (low < value if above else low <= value) and value <= high
    if valid:
        return []
    lowest, highest = (str(int(b)) if float(b).is_integer() else str(b) for b in (low, high))
    noun = "a whole number" if whole else "a number"
    span = f"above {lowest} and at most {highest}" if above else f"from {lowest} to {highest}"
    return [SettingsError(key, f"must be {noun} {span}")]
