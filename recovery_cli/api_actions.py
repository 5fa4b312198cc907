"""What each HTTP API route does, in terms of the core, answered in the shapes the CLI's
``--json`` prints. No web framework here: ``api_app`` maps routes to these calls.

Every call takes the config as it is at that moment (``watch`` may reload it) and builds its
own store and handlers: calls run side by side in worker threads, and each takes the same
file locks cron runs and people take. A call never prompts: a step that needs approval is
left pending, as it is for cron. Mutating calls record the caller's token name as the
operator and the client address on every record they write."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from recovery_cli.audit import Record
from recovery_cli.errors import ExitCode, RecoveryError, Terminated, UsageError, worst
from recovery_cli.handler_calls import Components
from recovery_cli.invocation import Session
from recovery_cli.run_context import RecoverRequest
from recovery_cli.store import Store

if TYPE_CHECKING:
    from recovery_cli.orchestrator import Orchestrator

API_TRIGGER = "api"
ALERT_TRIGGER = "alertmanager"


class NotFound(UsageError):
    """A component or approval the API was asked about does not exist."""


class ServerStopping(RecoveryError):
    """The server stopped while this call ran a step: the step was ended and recorded
    interrupted."""

    exit_code = ExitCode.INTERRUPTED


@contextmanager
def _stoppable() -> Iterator[None]:
    try:
        yield
    except Terminated:
        raise ServerStopping(
            "the server is stopping: the running step was ended and recorded interrupted"
        ) from None


@dataclass(frozen=True)
class Actor:
    """Who makes a mutating call: the token's name, from where, and why."""

    name: str
    client: str
    reason: str | None = None

    def stamp(self) -> dict[str, Any]:
        return {"client": self.client, "request_reason": self.reason}


@dataclass(frozen=True)
class HistoryParams:
    component: str | None = None
    since: str | None = None
    until: str | None = None
    outcome: str | None = None
    strategy: str | None = None
    event: str | None = None
    limit: int = 50


class ApiActions:
    def __init__(self, session: Session, on_record: Callable[[Record], None] | None = None):
        self.session = session
        self.on_record = on_record  # watch logs what API calls write, as it logs its own
        self.env = replace(session.env, interactive=False)

    # -- reads ---------------------------------------------------------------------------

    def status(self, probe: bool) -> list[dict[str, Any]]:
        from recovery_cli.status import component_status

        config = self.session.config
        components = Components(config, self.env, self.session.state_dir, read_only=True)
        rows = component_status(config, self._store(read_only=True), components, probe)
        return [r.to_json() for r in rows]

    def component(self, name: str, probe: bool) -> dict[str, Any]:
        self.known(name)
        return next(r for r in self.status(probe) if r["component"] == name)

    def history(self, params: HistoryParams) -> list[Record]:
        from recovery_cli import history as hist

        if params.component is not None:
            self.known(params.component)
        store = self._store(read_only=True)
        now = store.now()

        def some(value: str | None) -> tuple[str, ...]:
            return (value,) if value else ()

        query = hist.HistoryQuery(
            some(params.component),
            hist.parse_time(params.since, now) if params.since else None,
            hist.parse_time(params.until, now) if params.until else None,
            some(params.outcome),
            some(params.strategy),
            some(params.event),
            params.limit,
        )
        return hist.query(store, query)

    def stats(self, component: str | None, since: str | None, until: str | None) -> dict[str, Any]:
        """What ``history --stats --json`` gives, both views in one object: the rows per
        strategy and the outcomes per component over the window."""
        from recovery_cli import history as hist

        if component is not None:
            self.known(component)
        store = self._store(read_only=True)
        now = store.now()
        query = hist.HistoryQuery(
            (component,) if component else (),
            hist.parse_time(since, now) if since else None,
            hist.parse_time(until, now) if until else None,
        )
        analytics = hist.analytics_of(store, query)
        return {
            "strategies": [row.to_json() for row in analytics.rows],
            "components": [outcome.to_json() for outcome in analytics.components],
        }

    def approvals(self) -> list[dict[str, Any]]:
        from recovery_cli import approvals

        store = self._store(read_only=True)
        return [a.to_json() for a in approvals.pending(store.load_state(), store.now())]

    def metrics(self) -> str:
        from recovery_cli import metrics as prom

        return prom.exposition(prom.build_registry(self.session.config, self._store(True)))

    # -- changes -------------------------------------------------------------------------

    def recover(
        self,
        name: str,
        actor: Actor,
        strategy: str | None = None,
        dry_run: bool = False,
        trigger: str = API_TRIGGER,
    ) -> tuple[list[dict[str, Any]], int]:
        """The reports ``recover --json`` prints, and the exit code it would end with."""
        self.known(name)
        request = RecoverRequest(
            components=(name,),
            strategy=strategy,
            dry_run=dry_run,
            operator=actor.name,
            trigger=trigger,
        )
        with _stoppable():
            reports = self._orchestrator(actor, read_only=dry_run).recover(request)
        return [r.to_json() for r in reports], int(worst([r.code for r in reports]))

    def disable(self, name: str, seconds: float, actor: Actor) -> dict[str, Any]:
        from recovery_cli import controls
        from recovery_cli.handlers.util import format_ts

        self.known(name)
        until = controls.disable(
            self.session.config,
            self._store(actor=actor),
            name,
            seconds,
            actor.reason or "",
            actor.name,
        )
        return {"component": name, "disabled_until": format_ts(until)}

    def enable(self, name: str, actor: Actor) -> dict[str, Any]:
        from recovery_cli import controls

        self.known(name)
        lifted = controls.enable(self.session.config, self._store(actor=actor), name, actor.name)
        return {"component": name, "enabled": lifted}

    def approve(self, approval_id: str, actor: Actor) -> tuple[list[dict[str, Any]], int]:
        with _stoppable():
            report = self._orchestrator(actor).approve(approval_id, actor.name, API_TRIGGER)
        return [report.to_json()], int(report.code)

    def reject(self, approval_id: str, actor: Actor) -> dict[str, Any]:
        if not (actor.reason or "").strip():
            raise UsageError("a rejection needs a reason")
        closed = self._orchestrator(actor).reject(approval_id, actor.name, actor.reason or "")
        return closed.to_json()

    # -- parts ---------------------------------------------------------------------------

    def known(self, name: str) -> None:
        if name not in self.session.config.components:
            raise NotFound(f"unknown component {name!r}")

    def _store(self, read_only: bool = False, actor: Actor | None = None) -> Store:
        store = self.session.store(read_only, self.env)
        store.on_record = self.on_record
        if actor is not None:
            store.stamp = actor.stamp()
        return store

    def _orchestrator(self, actor: Actor, read_only: bool = False) -> Orchestrator:
        from recovery_cli.orchestrator import Orchestrator

        config = self.session.config
        components = Components(config, self.env, self.session.state_dir, read_only=read_only)
        return Orchestrator(config, self._store(read_only, actor), self.env, components)
