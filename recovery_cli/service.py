"""Service control: restart, stop and start the process behind a component.

One module, used by every handler that restarts something (through
``StrategyContext.service``). The ``service:`` block of a component picks the method:

- ``command``: argv lists (``restart``, or ``stop`` + ``start``), run without a shell;
- ``systemd``: ``systemctl restart|stop|start UNIT``;
- ``docker``: the Docker Engine API through the docker SDK, always with explicit timeouts
  (the SDK's own default is 60 s, longer than most step budgets);
- ``none`` (or no block): ``build_service`` returns ``None`` and restart strategies refuse.

A restart or start is only a success once the component's own probe is healthy again,
within ``ready_timeout_seconds`` (and the caller's step budget).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from recovery_cli.config import ServiceConfig
from recovery_cli.handlers.base import Check, Health, ProbeResult, ServiceControl, StrategyResult
from recovery_cli.handlers.util import CommandOutcome, run_command

Probe = Callable[[], ProbeResult]

ENGINE_UNREACHABLE = "engine_unreachable"
CONTAINER_NOT_FOUND = "container_not_found"
RESTART_TIMEOUT = "restart_timeout"
COMMAND_FAILED = "command_failed"
UNIT_NOT_FOUND = "unit_not_found"
NOT_CONFIGURED = "not_configured"

DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"
DOCKER_PID_TIMEOUT = 2.0  # watch asks after every run: a slow engine must not hold it
# systemctl exits 5 when the unit is not loaded ("Unit foo.service not found.").
SYSTEMCTL_UNIT_NOT_FOUND_RC = 5
POLL_FIRST = 0.05
POLL_MAX = 0.5
MIN_ACTION_TIMEOUT = 1.0


def build_service(
    spec: ServiceConfig | None, probe: Probe, environ: Mapping[str, str]
) -> ServiceControl | None:
    """The control for a ``service:`` block; ``None`` when there is no block or the method is
    ``none`` (handlers then refuse restarts with a clear ``no_service_control`` failure)."""
    if spec is None or spec.method == "none":
        return None
    if spec.method == "command":
        return CommandService(spec, probe, environ)
    if spec.method == "systemd":
        return SystemdService(spec, probe, environ)
    return DockerService(spec, probe, environ)


# --------------------------------------------------------------------------- readiness


@dataclass(frozen=True)
class Readiness:
    healthy: bool
    waited: float
    last: ProbeResult | None


def wait_until_healthy(probe: Probe, budget: float) -> Readiness:
    """Poll the component's probe until it is healthy or ``budget`` seconds have passed.

    A probe that raises counts as not healthy yet: right after a restart, clients often
    fail in ways the probe would normally turn into data."""
    started = time.monotonic()
    deadline = started + max(0.0, budget)
    delay = POLL_FIRST
    last: ProbeResult | None = None
    while True:
        try:
            last = probe()
        except Exception as exc:  # the probe is the component's code, not ours
            last = ProbeResult.down("probe_crashed", f"{type(exc).__name__}: {exc}")
        now = time.monotonic()
        if last.healthy or now >= deadline:
            return Readiness(last.healthy, now - started, last)
        time.sleep(min(delay, deadline - now))
        delay = min(POLL_MAX, delay * 2)


def _split_budget(spec: ServiceConfig, timeout: float) -> tuple[float, float]:
    """(seconds for the action itself, deadline for readiness), both inside ``timeout``."""
    action = max(MIN_ACTION_TIMEOUT, min(spec.timeout_seconds, timeout))
    return action, time.monotonic() + min(
        timeout, spec.timeout_seconds + spec.ready_timeout_seconds
    )


def _await_ready(
    service: _BaseService, verb: str, ready_deadline: float, started: float
) -> StrategyResult:
    budget = min(service.spec.ready_timeout_seconds, ready_deadline - time.monotonic())
    ready = wait_until_healthy(service.probe, budget)
    data: dict[str, Any] = {
        "method": service.method,
        "target": service.target,
        "seconds": round(time.monotonic() - started, 3),
        "ready_wait_seconds": round(ready.waited, 3),
    }
    if ready.healthy:
        return StrategyResult.success(f"{verb} {service.target}: healthy again", **data)
    last = ready.last
    why = f"{last.failure_type}: {last.detail}" if last is not None else "no probe answer"
    return StrategyResult.failure(
        RESTART_TIMEOUT,
        f"{verb} {service.target} done, but not healthy within {budget:.1f}s ({why})",
        **data,
    )


class _BaseService:
    """Shared shape: do the action, then (for restart/start) wait for health."""

    method = "none"

    def __init__(self, spec: ServiceConfig, probe: Probe, environ: Mapping[str, str]) -> None:
        self.spec = spec
        self.probe = probe
        self.environ = environ

    @property
    def target(self) -> str:
        raise NotImplementedError

    def _act(self, verb: str, timeout: float) -> StrategyResult | None:
        """Run ``verb``; ``None`` on success, else the failure."""
        raise NotImplementedError

    def restart(self, timeout: float) -> StrategyResult:
        return self._act_and_wait("restart", timeout)

    def start(self, timeout: float) -> StrategyResult:
        return self._act_and_wait("start", timeout)

    def stop(self, timeout: float) -> StrategyResult:
        started = time.monotonic()
        action, _ = _split_budget(self.spec, timeout)
        failure = self._act("stop", action)
        if failure is not None:
            return failure
        seconds = round(time.monotonic() - started, 3)
        return StrategyResult.success(
            f"stopped {self.target}", method=self.method, target=self.target, seconds=seconds
        )

    def _act_and_wait(self, verb: str, timeout: float) -> StrategyResult:
        started = time.monotonic()
        action, ready_deadline = _split_budget(self.spec, timeout)
        failure = self._act(verb, action)
        if failure is not None:
            return failure
        return _await_ready(self, verb, ready_deadline, started)

    def preflight(self) -> list[Check]:
        raise NotImplementedError


# --------------------------------------------------------------------------- command


def _outcome_failure(
    argv: list[str], outcome: CommandOutcome, timeout: float
) -> StrategyResult | None:
    if outcome.missing:
        return StrategyResult.failure(COMMAND_FAILED, f"cannot run {argv[0]}: {outcome.output}")
    if outcome.timed_out:
        return StrategyResult.failure(
            RESTART_TIMEOUT, f"{argv[0]} did not finish within {timeout:.1f}s (killed)"
        )
    if outcome.returncode != 0:
        return StrategyResult.failure(
            COMMAND_FAILED,
            f"{' '.join(argv)} exited {outcome.returncode}: {outcome.first_line}",
            returncode=outcome.returncode,
        )
    return None


class CommandService(_BaseService):
    """``method: command``: argv lists. ``restart`` falls back to ``stop`` (optional; a failure
    of it does not stop the start) then ``start``; ``start`` falls back to ``restart``
    (restarting a stopped service starts it)."""

    method = "command"

    @property
    def target(self) -> str:
        argv = self.spec.restart or self.spec.start or []
        return argv[0] if argv else "command"

    def _argvs(self, verb: str) -> list[list[str]]:
        spec = self.spec
        chosen = {
            "restart": [spec.restart] if spec.restart else [spec.stop, spec.start],
            "start": [spec.start or spec.restart],
            "stop": [spec.stop],
        }[verb]
        return [list(argv) for argv in chosen if argv]

    def _act(self, verb: str, timeout: float) -> StrategyResult | None:
        argvs = self._argvs(verb)
        if not argvs:
            return StrategyResult.failure(
                NOT_CONFIGURED, f"the service block has no '{verb}' command"
            )
        deadline = time.monotonic() + timeout
        for argv in argvs:
            left = max(MIN_ACTION_TIMEOUT, deadline - time.monotonic())
            failure = _outcome_failure(argv, run_command(argv, left, env=self.environ), left)
            if failure is not None and not self._stop_before_start(verb, argv):
                return failure
        return None

    def _stop_before_start(self, verb: str, argv: list[str]) -> bool:
        """In a restart made of stop then start, a stop that fails (often: nothing runs,
        as with `redis-cli shutdown` on a crashed server) is no reason not to start."""
        return verb == "restart" and not self.spec.restart and argv == list(self.spec.stop or [])

    def preflight(self) -> list[Check]:
        """Commands found on this host say the service is run here (nothing more is known)."""
        checks = []
        for verb in ("restart", "stop", "start"):
            argv = getattr(self.spec, verb)
            if argv:
                check = _tool_check(f"service.{verb}", argv[0], self.environ)
                checks.append(replace(check, found=True) if check.ok else check)
        return checks


def _tool_check(name: str, program: str, environ: Mapping[str, str]) -> Check:
    found = shutil.which(program, path=environ.get("PATH"))
    if found:
        return Check(name, True, f"{program} -> {found}")
    return Check(name, False, f"{program} not found on PATH", found=False)


# --------------------------------------------------------------------------- systemd


class SystemdService(_BaseService):
    """``method: systemd``: ``systemctl VERB UNIT`` (found on the environment's PATH)."""

    method = "systemd"

    @property
    def target(self) -> str:
        return str(self.spec.unit)

    def _systemctl(self, args: list[str], timeout: float) -> tuple[list[str], CommandOutcome]:
        argv = ["systemctl", *args]
        return argv, run_command(argv, timeout, env=self.environ)

    def _act(self, verb: str, timeout: float) -> StrategyResult | None:
        argv, outcome = self._systemctl([verb, self.target], timeout)
        if _unit_missing(outcome):
            return StrategyResult.failure(
                UNIT_NOT_FOUND, f"systemd has no unit {self.target}: {outcome.first_line}"
            )
        return _outcome_failure(argv, outcome, timeout)

    def preflight(self) -> list[Check]:
        tool = _tool_check("service.systemctl", "systemctl", self.environ)
        if not tool.ok:
            return [tool]
        _, outcome = self._systemctl(["show", "--property=LoadState", "--value", self.target], 5.0)
        state = outcome.output.strip()
        if outcome.returncode == 0 and state == "loaded":
            return [tool, Check("service.unit", True, f"{self.target} is loaded", found=True)]
        return [tool, _unit_problem(self.target, state, outcome)]


def _unit_problem(unit: str, state: str, outcome: CommandOutcome) -> Check:
    """No systemd here or no such unit: not on this host; a unit that exists but does not
    load (masked, bad-setting, error) is here and broken."""
    text = outcome.output.lower()
    if "not been booted with systemd" in text or "failed to connect to bus" in text:
        return Check("service.unit", False, f"{unit}: systemd is not running here", found=False)
    if state == "not-found":
        return Check("service.unit", False, f"{unit}: not-found (no such unit here)", found=False)
    detail = state or outcome.first_line or "no answer"
    return Check("service.unit", False, f"{unit}: {detail}", found=bool(state) or None)


def _unit_missing(outcome: CommandOutcome) -> bool:
    text = outcome.output.lower()
    return outcome.returncode == SYSTEMCTL_UNIT_NOT_FOUND_RC or (
        outcome.returncode not in (0, None) and "not found" in text and "unit" in text
    )


# --------------------------------------------------------------------------- docker


def docker_url(spec: ServiceConfig, environ: Mapping[str, str]) -> str:
    return spec.base_url or environ.get("DOCKER_HOST") or DEFAULT_DOCKER_URL


class EngineError(Exception):
    """A Docker Engine call failed; ``failure_type`` says how."""

    def __init__(self, failure_type: str, message: str) -> None:
        super().__init__(message)
        self.failure_type = failure_type


def _docker_error(exc: Exception, container: str) -> EngineError:
    """Map docker SDK / requests exceptions onto our failure types."""
    import docker.errors

    if isinstance(exc, docker.errors.NotFound):
        return EngineError(CONTAINER_NOT_FOUND, f"no container {container!r} on the engine")
    if isinstance(exc, docker.errors.APIError):
        return EngineError(COMMAND_FAILED, f"engine refused: {exc.explanation or exc}")
    text = str(exc)
    if "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
        return EngineError(RESTART_TIMEOUT, f"engine did not answer in time: {text}")
    return EngineError(ENGINE_UNREACHABLE, f"cannot reach the Docker engine: {text}")


def _check_unix_socket(url: str, timeout: float) -> None:
    """Fail fast (and without leaking the SDK's half-open socket) when a unix engine socket
    does not accept connections."""
    import socket

    if not url.startswith(("unix://", "http+unix://")):
        return
    path = url.split("://", 1)[1]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(path)
        except OSError as exc:
            raise EngineError(
                ENGINE_UNREACHABLE,
                f"cannot reach the Docker engine at {path}: {exc.strerror or exc}",
            ) from exc


def _engine_call(
    spec: ServiceConfig, environ: Mapping[str, str], timeout: float, call: Callable[[Any], Any]
) -> Any:
    """Open a client with an explicit timeout, run ``call(container)``, close the client."""
    import docker
    import requests

    container = str(spec.container)
    url = docker_url(spec, environ)
    _check_unix_socket(url, timeout)
    try:
        client = docker.DockerClient(base_url=url, timeout=max(1, round(timeout)))
    except (docker.errors.DockerException, requests.RequestException) as exc:
        # The constructor only negotiates the API version: any failure here, a timeout
        # included, means the engine itself is not answering.
        raise EngineError(ENGINE_UNREACHABLE, f"cannot reach the Docker engine: {exc}") from exc
    try:
        return call(client.containers.get(container))
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise _docker_error(exc, container) from exc
    finally:
        client.close()


def docker_main_pid(spec: ServiceConfig, environ: Mapping[str, str]) -> int | None:
    """The container's ``State.Pid`` when the engine runs on this host (a unix socket): a
    remote engine's pids name processes of another machine. None when not running or not
    known."""
    url = docker_url(spec, environ)
    if not url.startswith(("unix://", "http+unix://")) or not spec.container:
        return None
    try:
        state = _engine_call(spec, environ, DOCKER_PID_TIMEOUT, lambda c: c.attrs.get("State"))
    except EngineError:
        return None
    pid = state.get("Pid") if isinstance(state, Mapping) else None
    return pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 1 else None


class DockerService(_BaseService):
    """``method: docker``: restart/stop/start one container through the Engine API."""

    method = "docker"

    @property
    def target(self) -> str:
        return str(self.spec.container)

    def _act(self, verb: str, timeout: float) -> StrategyResult | None:
        # The SDK's HTTP timeout for restart/stop is client timeout + the stop grace ``t``.
        grace = max(1, int(timeout / 2))
        api_timeout = max(MIN_ACTION_TIMEOUT, timeout - grace)

        def act(container: Any) -> None:
            if verb == "start":
                container.start()
            else:
                getattr(container, verb)(timeout=grace)

        try:
            _engine_call(self.spec, self.environ, api_timeout, act)
        except EngineError as exc:
            return StrategyResult.failure(
                exc.failure_type, str(exc), retryable=exc.failure_type == ENGINE_UNREACHABLE
            )
        return None

    def preflight(self) -> list[Check]:
        try:
            status = _engine_call(self.spec, self.environ, 5.0, lambda c: c.status)
        except EngineError as exc:
            absent = exc.failure_type in (ENGINE_UNREACHABLE, CONTAINER_NOT_FOUND)
            detail = f"{exc.failure_type}: {exc}"
            return [Check("service.docker", False, detail, found=False if absent else None)]
        return [Check("service.docker", True, f"container {self.target} is {status}", found=True)]


def container_health(
    spec: ServiceConfig | None, environ: Mapping[str, str], timeout: float = 5.0
) -> ProbeResult | None:
    """The container's own view of its health, for folding into the component's probe.

    ``None`` when the method is not docker. Otherwise: ``down`` for ``container_not_found``,
    ``container_not_running`` (exited, dead, paused, created; OOM kills named),
    ``restart_loop`` (the engine keeps restarting it) and ``container_unhealthy`` (its
    HEALTHCHECK fails); ``degraded`` for ``container_starting`` and ``engine_unreachable``
    (the service itself may be fine); healthy otherwise, also when there is no HEALTHCHECK."""
    if spec is None or spec.method != "docker":
        return None
    try:
        attrs = _engine_call(spec, environ, timeout, lambda c: dict(c.attrs))
    except EngineError as exc:
        if exc.failure_type == CONTAINER_NOT_FOUND:
            return ProbeResult.down(CONTAINER_NOT_FOUND, str(exc))
        return ProbeResult.degraded(ENGINE_UNREACHABLE, str(exc))
    return _health_from_state(str(spec.container), attrs)


def _health_from_state(name: str, attrs: Mapping[str, Any]) -> ProbeResult:
    state = attrs.get("State") or {}
    status = state.get("Status", "unknown")
    health = (state.get("Health") or {}).get("Status") or "none"
    metrics = {"container_restart_count": float(attrs.get("RestartCount") or 0)}
    if state.get("Restarting") or status == "restarting":
        return ProbeResult.down("restart_loop", f"container {name} keeps restarting")
    if status != "running":
        oom = " (OOM killed)" if state.get("OOMKilled") else ""
        return ProbeResult.down("container_not_running", f"container {name} is {status}{oom}")
    if health == "unhealthy":
        return ProbeResult.down("container_unhealthy", f"container {name} healthcheck: unhealthy")
    if health == "starting":
        return ProbeResult.degraded("container_starting", f"container {name} healthcheck: starting")
    return ProbeResult.ok(f"container {name} running, healthcheck {health}", metrics)


_SEVERITY = {Health.HEALTHY: 0, Health.DEGRADED: 1, Health.DOWN: 2}


def fold_container_health(
    probe: ProbeResult, spec: ServiceConfig | None, environ: Mapping[str, str], timeout: float = 5.0
) -> ProbeResult:
    """The worse of the handler's probe and the container's health (docker method only)."""
    container = container_health(spec, environ, timeout)
    if container is None or _SEVERITY[container.health] <= _SEVERITY[probe.health]:
        return probe
    return container
