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
    """One probe. ``marks`` name conditions of a component that works but is not as
    configured (``on_fallback``: serving from a fallback after a failover). ``follow_up``
    names a strategy the core runs although the component is healthy (``restore_config``
    once the primary answers again)."""

    health: Health
    failure_type: str | None = None
    detail: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    marks: tuple[str, ...] = ()
    follow_up: str | None = None

    def __post_init__(self) -> None:
        _trim_detail(self)

    @property
    def healthy(self) -> bool:
        return self.health is Health.HEALTHY

    @classmethod
    def ok(
        cls,
        detail: str = "",
        metrics: Mapping[str, float] | None = None,
        marks: tuple[str, ...] = (),
        follow_up: str | None = None,
    ) -> ProbeResult:
        return cls(Health.HEALTHY, None, detail, metrics or {}, marks, follow_up)

    @classmethod
    def down(cls, failure_type: str, detail: str = "") -> ProbeResult:
        return cls(Health.DOWN, failure_type, detail)

    @classmethod
    def degraded(cls, failure_type: str, detail: str = "") -> ProbeResult:
        return cls(Health.DEGRADED, failure_type, detail)


@dataclass(frozen=True)
class StrategyResult:
    """What one strategy run did. ``ok`` means the action itself succeeded; whether the
    component is healthy afterwards is decided by the orchestrator's re-probe.

    A destructive step accounts for what it discards, in ``data`` (see ``Loss``): a dry
    run puts what the step would discard under ``would_lose`` (shown in the approval's
    plan and bound by its hash); a real run puts what it could not give back under
    ``lost``, which makes the attempt's outcome ``recovered_with_loss``."""

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


WOULD_LOSE = "would_lose"
LOST = "lost"
LOSS_ITEMS_SHOWN = 100  # ids or keys kept in a plan or an audit record; the count is exact


@dataclass(frozen=True)
class Loss:
    """What a destructive step discards (or would): ``count`` exact (None: could not be
    counted), ``items`` the first ids or keys, ``where`` the quarantine or backup holding
    them, ``undo`` how a person gets them back, ``binds`` what an approval is bound to."""

    summary: str
    count: int | None
    items: tuple[str, ...] = ()
    where: str | None = None
    undo: str = ""
    # what an approval's plan hash binds, when not the whole of it: a cache whose keys
    # churn binds its patterns and limit, not the exact keys of the moment
    binds: Mapping[str, Any] | None = None

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"summary": self.summary, "count": self.count}
        if self.binds is not None:
            data["binds"] = dict(self.binds)
        if self.items:
            data["items"] = list(self.items[:LOSS_ITEMS_SHOWN])
        if self.where:
            data["where"] = self.where
        if self.undo:
            data["undo"] = self.undo
        return data

    @property
    def nothing(self) -> bool:
        return self.count == 0


def _trim_detail(result: ProbeResult | StrategyResult) -> None:
    """Every way of building a result bounds its detail: it goes into audit records."""
    object.__setattr__(result, "detail", trim(result.detail))


@dataclass(frozen=True)
class Check:
    """One precondition reported by ``preflight`` (and ``recovery test``).

    ``found`` is what the check says about the component being on this host at all:
    ``True``, it saw it (a loaded unit, a server that answered, even with a refusal, its data
    directory); ``False``, it failed only because the component is not here (nothing
    listens, no unit, no client library, a secret nothing here asks for); ``None``, it says
    nothing about the host (a config value, the tool's own files). The drill skips a failed
    ``found=False`` check when no check of the component found it, and fails it otherwise."""

    name: str
    ok: bool
    detail: str = ""
    found: bool | None = None


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
    # the wall clock (the core's injected one); deadlines use time.monotonic
    now: Callable[[], float] = time.time

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


@dataclass(frozen=True)
class KindSpec:
    """A kind as the registry sees it, read without importing its handler or client library:
    where its handler, settings check and strategies live, and the strategy names (declared
    here only). Built-in kinds keep theirs in ``<kind>/kind.py``; a plugin names its own in
    the ``recovery_cli.kinds`` entry-point group."""

    description: str
    handler: str  # "module:Class", a BaseHandler subclass
    # "module:function", ``validate(settings, params) -> list[SettingsError]`` in a light
    # module; ``None``: the kind takes any settings
    settings: str | None
    # each a function ``(handler, ctx) -> StrategyResult`` of ``strategy_module``;
    # ``None``: the component's config names them (kind: command)
    strategies: tuple[str, ...] | None
    strategy_module: str = ""
    # the failure types users feel: a degraded mode of this kind's component is entered
    # only when its exhausted chain's failure type is one of them (a mode's own
    # ``failure_types`` overrides); empty: every failure type
    degraded_failure_types: tuple[str, ...] = ()
    # strategy -> failure types it cannot fix (a chain skips it for them)
    cannot_help: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # strategies that change or discard data: one that raises is never run again in the
    # same step (it may have acted before it raised)
    destructive: tuple[str, ...] = ()
    # "module:function", ``warnings(settings, strategy_params) -> list[SettingsError]``:
    # a config that loads but cannot work as meant (printed, never fatal)
    warnings: str | None = None


class BaseHandler:
    """The one contract: every kind subclasses it. The core builds it from a
    ``ComponentContext`` and calls ``probe``, ``strategies`` and ``preflight``, nothing else."""

    kind: ClassVar[str]
    spec: ClassVar[KindSpec]
    # True: ``preflight`` judges the component's ``*_env`` secrets itself (which ones its
    # strategies need, and whether the server asks for them); the drill then adds no
    # check that each is merely set
    judges_own_secrets: ClassVar[bool] = False

    def __init__(self, context: ComponentContext) -> None:
        self.context = context

    def probe(self) -> ProbeResult:
        raise NotImplementedError

    def strategies(self) -> Mapping[str, Strategy]:
        """Each strategy the kind declares, bound to this handler."""
        import functools
        import importlib

        module = importlib.import_module(self.spec.strategy_module)
        return {
            name: functools.partial(getattr(module, name), self)
            for name in self.spec.strategies or ()
        }

    def preflight(self, strategy: str) -> list[Check]:
        return []
