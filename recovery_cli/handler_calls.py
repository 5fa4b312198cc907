"""Wiring from config to live handlers, and calls into handler code with hard time limits.

Handler code is someone else's failure domain: a probe that hangs or raises becomes a
``ProbeResult`` (``probe_timeout`` / ``probe_crashed``), never a hung or dead CLI."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from recovery_cli.config import Config
from recovery_cli.environment import Environment
from recovery_cli.errors import Terminated
from recovery_cli.handlers.base import (
    BaseHandler,
    ComponentContext,
    ProbeResult,
    ServiceControl,
    StrategyResult,
)
from recovery_cli.handlers.util import end_commands
from recovery_cli.registry import HandlerUnavailable, build_handler

T = TypeVar("T")
GRACE_SECONDS = 0.5
SLICE_SECONDS = 0.1  # how often a wait looks at ``STOPPING``
# set when a server stops (``serve``, ``watch --listen``): every call waited on in another
# thread ends its commands and raises ``Terminated`` there, so its step is recorded interrupted
STOPPING = threading.Event()


@dataclass(frozen=True)
class TimedOut:
    seconds: float


@dataclass(frozen=True)
class Crashed:
    error: BaseException


def call_with_timeout(fn: Callable[[], T], timeout: float) -> T | TimedOut | Crashed:
    """Run ``fn`` in a daemon thread; give up waiting after ``timeout`` seconds.

    Giving up on the thread ends the commands it started; Ctrl-C or SIGTERM while waiting
    ends every command still running, then propagates (the caller records it)."""
    box: list[T | Crashed] = []

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # the handler's failure is a result, not ours
            box.append(Crashed(exc))

    worker = threading.Thread(target=target, name="recovery-call", daemon=True)
    worker.start()
    try:
        _join(worker, timeout)
    except BaseException:  # KeyboardInterrupt, Terminated: this run is over, so are its commands
        end_commands()
        raise
    if not box:
        end_commands(worker.ident)
        return TimedOut(timeout)
    return box[0]


def _join(worker: threading.Thread, timeout: float) -> None:
    """Wait for ``worker`` up to ``timeout``; ``Terminated`` once the process is stopping."""
    deadline = time.monotonic() + timeout
    while worker.is_alive():
        if STOPPING.is_set():
            end_commands(worker.ident)
            worker.join(GRACE_SECONDS)
            raise Terminated
        left = deadline - time.monotonic()
        if left <= 0:
            return
        worker.join(min(left, SLICE_SECONDS))


class Components:
    """Handlers and service controls for the configured components, built on first use."""

    def __init__(
        self, config: Config, env: Environment, state_dir: Path, read_only: bool = False
    ) -> None:
        self.config = config
        self.env = env
        self.state_dir = state_dir
        self.read_only = read_only  # status and dry runs: handlers keep nothing on disk
        self._handlers: dict[str, BaseHandler] = {}
        self._probes: dict[str, ProbeResult] = {}

    def context(self, name: str) -> ComponentContext:
        component = self.config.components[name]
        return ComponentContext(
            name=name,
            settings=component.settings,
            strategy_params={s: spec.params for s, spec in component.strategies.items()},
            state_dir=self.state_dir,
            environ=self.env.environ,
            probe_timeout=self.config.probe_timeout(name),
            read_only=self.read_only,
            now=self.env.clock.now,
        )

    def handler(self, name: str) -> BaseHandler:
        """Raises ``HandlerUnavailable`` when the kind has no handler in this build."""
        if name not in self._handlers:
            self._handlers[name] = build_handler(
                self.config.components[name].kind, self.context(name)
            )
        return self._handlers[name]

    def service(self, name: str) -> ServiceControl | None:
        spec = self.config.components[name].service
        if spec is None or spec.method == "none":
            return None
        from recovery_cli.service import build_service

        return build_service(spec, lambda: self.probe(name, fresh=True), self.env.environ)

    def forget_probes(self) -> None:
        """Start a new run (``watch``): probes are made again; handlers, and their client
        connections, are kept."""
        self._probes.clear()

    def probe(self, name: str, fresh: bool = False) -> ProbeResult:
        """The component's health; cached for the run unless ``fresh``."""
        if fresh or name not in self._probes:
            self._probes[name] = self._probe_now(name)
        return self._probes[name]

    def _probe_now(self, name: str) -> ProbeResult:
        try:
            handler = self.handler(name)
        except HandlerUnavailable as exc:
            return ProbeResult.down("handler_unavailable", str(exc))
        timeout = self.config.probe_timeout(name) + GRACE_SECONDS
        outcome = call_with_timeout(handler.probe, timeout)
        if isinstance(outcome, TimedOut):
            return ProbeResult.down(
                "probe_timeout", f"probe did not answer within {outcome.seconds:g}s"
            )
        if isinstance(outcome, Crashed):
            return ProbeResult.down(
                "probe_crashed", f"{type(outcome.error).__name__}: {outcome.error}"
            )
        return self._with_container_health(name, outcome)

    def _with_container_health(self, name: str, probe: ProbeResult) -> ProbeResult:
        """A Docker-run component is only as healthy as its container's own health check."""
        spec = self.config.components[name].service
        if spec is None or spec.method != "docker":
            return probe
        from recovery_cli.service import fold_container_health

        return fold_container_health(probe, spec, self.env.environ, self.config.probe_timeout(name))


def strategy_result_from(outcome: StrategyResult | TimedOut | Crashed) -> StrategyResult:
    if isinstance(outcome, TimedOut):
        return StrategyResult.failure(
            "step_timeout", f"step did not finish within {outcome.seconds:g}s"
        )
    if isinstance(outcome, Crashed):
        error = outcome.error
        return StrategyResult.failure(
            "step_error", f"{type(error).__name__}: {error}", retryable=True
        )
    return outcome
