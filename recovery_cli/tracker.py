"""Keeps each component's lifecycle in the state file, inside a store transaction: counts
probes, moves states (each change recorded as ``state_changed``), and plans the alert each
state needs (queued in the run's outbox, sent once no lock is held)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from recovery_cli import alerts, root_cause
from recovery_cli.audit import Event
from recovery_cli.config import Config
from recovery_cli.environment import Environment
from recovery_cli.handlers.base import ProbeResult
from recovery_cli.lifecycle import Life, LifeState, Thresholds, move, observe, settled_state
from recovery_cli.state_file import State
from recovery_cli.store import Store, Transaction

UNHEALTHY = "unhealthy"
MAX_UNSENT = 100  # resolutions kept for the next run when no target took them
PROBE_HEALTHY = "probe healthy"


class Tracker:
    def __init__(self, config: Config, env: Environment, outbox: alerts.Outbox) -> None:
        self.config = config
        self.env = env
        self.outbox = outbox

    def life(self, state: State, name: str) -> Life:
        return Life.from_json(state.components.get(name))

    def thresholds(self, name: str) -> Thresholds:
        return self.config.thresholds(name)

    def needs_no_write(self, state: State, name: str, probe: ProbeResult) -> bool:
        """A healthy probe of a component that is healthy with nothing counted: the common
        case, which takes no lock and writes nothing."""
        life = self.life(state, name)
        return (
            life.state is LifeState.HEALTHY
            and not life.failures
            and not life.successes
            and life.alert is None
            and life.marks == probe.marks
        )

    def count_probe(self, tx: Transaction, name: str, probe: ProbeResult) -> Life:
        now = self.env.clock.now()
        counted = observe(
            self.life(tx.state, name), probe.healthy, probe.failure_type, now, self.thresholds(name)
        )
        counted = replace(counted, marks=probe.marks)
        settled = settled_state(counted, probe.healthy, self.thresholds(name))
        if settled is None:
            return self.put(tx, name, counted)
        reason = PROBE_HEALTHY if probe.healthy else UNHEALTHY
        return self.put(tx, name, counted, settled, reason, probe.detail)

    def put(
        self,
        tx: Transaction,
        name: str,
        life: Life,
        state: LifeState | None = None,
        reason: str = "",
        detail: str = "",
        roots: Sequence[str] = (),
    ) -> Life:
        """Store ``life`` (moved to ``state`` when given, with the roots behind a dependency
        block), recording the transition and planning its alert."""
        now = self.env.clock.now()
        before = tx.state.components.get(name)
        if state is not None:
            life = replace(life, root_cause=tuple(roots))
            life, transition = move(life, name, state, reason, now)
            if transition is not None:
                tx.record(
                    Event.STATE_CHANGED,
                    name,
                    from_state=str(transition.before),
                    to_state=str(transition.after),
                    reason=transition.reason,
                    failure_type=life.failure_type,  # what an incident it starts is counted as
                    detail=detail or None,
                )
        if detail:
            life = replace(life, detail=detail)
        if life.to_json() != before:
            tx.state.components[name] = life.to_json()
            tx.changed()
        return life

    def settle_alert(self, store: Store, name: str) -> None:
        """Once a run is done with a component: fire, re-send or resolve the alert its final
        state needs (intermediate states of the run page nobody)."""
        state = store.load_state()
        life = self.life(state, name)
        if life.alert is None and self.alert_labels(name, life) is None:
            return  # nothing held, nothing wanted: no lock, no write
        with store.transaction(self.config.defaults.lock_wait_seconds) as tx:
            life = self.life(tx.state, name)
            labels = self.alert_labels(name, life)
            summary = f"{name} on {self.env.host}: {life.state} ({life.reason})" + (
                f": {life.detail}" if life.detail else ""
            )
            now = self.env.clock.now()
            held, messages = alerts.plan(life.alert, labels, summary, self.config.alerting, now)
            if held != life.alert:
                tx.state.components[name] = replace(life, alert=held).to_json()
                tx.changed()
            self.outbox.add(messages)

    def alert_labels(self, name: str, life: Life) -> dict[str, str] | None:
        alertname = alerts.ALERT_NAMES.get(life.state)
        if alertname is None:
            return self._mark_alert(name, life)
        below = life.failures < self.thresholds(name).failures_before_action
        if life.state is LifeState.FAILING and below:
            return None  # not yet past its threshold: nobody is paged for one bad probe
        return {
            "alertname": alertname,
            "component": name,
            "host": self.env.host,
            "severity": self.config.severity(name),
            "state": str(life.state),
            "reason": life.reason,
            **self._root_labels(name, life),
        }

    def _root_labels(self, name: str, life: Life) -> dict[str, str]:
        """A component blocked by a down dependency names the roots that explain it, so
        Alertmanager can hold its alert back while theirs fires; a component others depend
        on names itself while it is down for its own reasons (always, not only once a
        dependent is down too: the label is part of the alert's identity)."""
        if life.root_cause:
            return {"inhibited_by": root_cause.label(life.root_cause)}
        if name in root_cause.depended_on(self.config.dependency_graph()):
            return {"root_cause": name}
        return {}

    def _mark_alert(self, name: str, life: Life) -> dict[str, str] | None:
        """A working component on its fallback holds a low-severity alert until restored."""
        if life.state is not LifeState.HEALTHY or alerts.ON_FALLBACK not in life.marks:
            return None
        return {
            "alertname": alerts.ON_FALLBACK_ALERT,
            "component": name,
            "host": self.env.host,
            "severity": "info",
            "state": str(life.state),
            "reason": alerts.ON_FALLBACK,
        }

    def remember_unsent(self, tx: Transaction, failed: list[alerts.PendingAlert]) -> None:
        for alert in failed:
            if alert.resolved:
                tx.state.unsent_alerts = [*tx.state.unsent_alerts, alert.to_json()][-MAX_UNSENT:]
                continue
            name = alert.labels.get("component")
            life = self.life(tx.state, name) if name else None
            if life is not None and life.alert and life.alert.get("labels") == dict(alert.labels):
                held = {**life.alert, "sent_at": None}  # the next run sends it again
                tx.state.components[str(name)] = replace(life, alert=held).to_json()
        tx.changed()

    def take_unsent(self, tx: Transaction) -> None:
        queued = [alerts.PendingAlert.from_json(item) for item in tx.state.unsent_alerts]
        self.outbox.add([a for a in queued if a is not None])
        tx.state.unsent_alerts = []
        tx.changed()

    def forget_removed(self, tx: Transaction) -> None:
        """A component taken out of the config: its held alert is resolved, its life gone."""
        now = self.env.clock.now()
        for name in [n for n in tx.state.components if n not in self.config.components]:
            life = self.life(tx.state, name)
            _, messages = alerts.plan(life.alert, None, "", self.config.alerting, now)
            self.outbox.add(messages)
            del tx.state.components[name]
            tx.changed()
