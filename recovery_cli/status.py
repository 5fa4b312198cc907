"""``recovery status``: where each component stands with the gates, and why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from recovery_cli import approvals, chain_order, policy, root_cause
from recovery_cli.alerts import ON_FALLBACK
from recovery_cli.config import Config
from recovery_cli.handler_calls import Components
from recovery_cli.handlers.base import ProbeResult
from recovery_cli.handlers.util import format_ts
from recovery_cli.lifecycle import Life, LifeState
from recovery_cli.registry import is_available
from recovery_cli.state_file import State
from recovery_cli.store import Store


@dataclass(frozen=True)
class ComponentStatus:
    component: str
    kind: str
    mode: str
    handler: str  # available | unavailable
    health: str  # healthy | degraded | down | not probed
    failure_type: str | None
    detail: str
    attempts_last_hour: int
    hourly_cap: int
    cooldown_left_s: int
    disabled_until: str | None
    degraded_modes: list[str]
    pending_approvals: list[str]
    next_allowed: str
    explain: list[str]
    state: str = "healthy"  # the lifecycle state
    state_since: str | None = None
    state_reason: str = ""
    next_step: str = ""  # what happens next, in words
    marks: tuple[str, ...] = ()  # a working component not as configured: ``on_fallback``
    chain_order: dict[str, Any] | None = None  # the order its chain would run in, and why
    # down because down dependencies lead to these roots (a root: itself, while it explains
    # another down component); and, for a root, the down components it explains
    root_cause: tuple[str, ...] = ()
    root_of: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def component_status(
    config: Config, store: Store, components: Components, probe: bool
) -> list[ComponentStatus]:
    state = store.load_state()
    now = store.now()
    rows = []
    down: set[str] = set()
    for name, component in config.components.items():
        window = store.window(name, config.hourly_cap(name), config.cooldown(name))
        disabled = policy.disabled_entry(state.disabled, name, now)
        result = components.probe(name) if probe else None
        life = Life.from_json(state.components.get(name))
        cooldown_until = window.cooldown_until
        next_allowed = (
            max(window.next_allowed, float(disabled.until)) if disabled else window.next_allowed
        )
        if _is_down(result, life):
            down.add(name)
        order = chain_order.resolve(config, store, name, _failure_at_hand(result, life))
        rows.append(
            ComponentStatus(
                component=name,
                kind=component.kind,
                mode=component.mode,
                handler="available" if is_available(component.kind) else "unavailable",
                health=str(result.health) if result else "not probed",
                failure_type=result.failure_type if result else None,
                detail=result.detail if result else "",
                attempts_last_hour=window.used,
                hourly_cap=window.cap,
                cooldown_left_s=int(cooldown_until - now) if cooldown_until else 0,
                disabled_until=format_ts(float(disabled.until)) if disabled else None,
                degraded_modes=sorted(
                    m for m, entry in state.degraded.items() if entry.component == name
                ),
                pending_approvals=[
                    a.id for a in approvals.pending(state, now) if a.component == name
                ],
                next_allowed="now" if next_allowed <= now else format_ts(next_allowed),
                explain=[*policy.explain_window(window), *chain_order.explain(order.to_record())],
                chain_order=order.to_record(),
                marks=result.marks if result else life.marks,
                **_lifecycle(config, name, life, state, now),
            )
        )
    stored = {} if probe else _stored_root_causes(state, down)
    return _with_root_cause(config, rows, down, stored)


def _stored_root_causes(state: State, down: set[str]) -> dict[str, tuple[str, ...]]:
    """The roots the last run named for each component still down (``--no-probe``: a run of
    one component probes its dependencies but leaves them no lifecycle to read)."""
    found: dict[str, tuple[str, ...]] = {}
    for name in down:
        roots = Life.from_json(state.components.get(name)).root_cause
        if roots:
            found[name] = roots
    return found


def _with_root_cause(
    config: Config,
    rows: list[ComponentStatus],
    down: set[str],
    stored: Mapping[str, tuple[str, ...]],
) -> list[ComponentStatus]:
    """Mark the components a down dependency explains, and the roots that explain them
    (where the graph of down components explains nothing, the roots a run stored)."""
    causes = root_cause.root_causes(config.dependency_graph(), down)
    for name, roots in stored.items():
        if causes.get(name, (name,)) == (name,):
            causes[name] = roots
    roots_of = root_cause.explained(causes)
    return [
        replace(
            row,
            root_cause=_cause_shown(row.component, causes, roots_of),
            root_of=roots_of.get(row.component, ()),
        )
        for row in rows
    ]


def _cause_shown(
    name: str, causes: dict[str, tuple[str, ...]], roots_of: dict[str, tuple[str, ...]]
) -> tuple[str, ...]:
    """A dependent's roots; a root's own name only while it explains another component."""
    roots = causes.get(name, ())
    return () if roots == (name,) and name not in roots_of else roots


def _is_down(probe: ProbeResult | None, life: Life) -> bool:
    """Not healthy: by the probe, else (not probed) by the state the last run left."""
    return not probe.healthy if probe is not None else life.state is not LifeState.HEALTHY


def _failure_at_hand(probe: ProbeResult | None, life: Life) -> str | None:
    """The failure whose chain status explains: the probe's, else (not probed) the one the
    component was last found with while it is not healthy."""
    if probe is not None:
        return None if probe.healthy else probe.failure_type
    return None if life.state is LifeState.HEALTHY else life.failure_type


def _lifecycle(config: Config, name: str, life: Life, state: State, now: float) -> dict[str, Any]:
    return {
        "state": str(life.state),
        "state_since": format_ts(life.since) if life.since else None,
        "state_reason": life.reason,
        "next_step": _next_step(config, name, life, state, now),
    }


def _blocked_step(life: Life) -> str:
    """What a blocked component waits for: the root its dependencies lead to, or the gate."""
    if life.reason == "dependency" and life.root_cause:
        roots, first = ", ".join(life.root_cause), life.root_cause[0]
        return f"waits for its root cause {roots}: recovery recover {first}"
    return f"blocked by {life.reason}: recovery status --explain"


def _next_step(config: Config, name: str, life: Life, state: State, now: float) -> str:
    thresholds = config.thresholds(name)
    pending = [a.id for a in approvals.pending(state, now) if a.component == name]
    healthy = "nothing to do"
    if ON_FALLBACK in life.marks:
        healthy = "on its fallback: the next run restores it once the primary answers"
    steps = {
        LifeState.HEALTHY: healthy,
        LifeState.FAILING: (
            f"acts after {thresholds.failures_before_action - life.failures} more failing probe(s)"
            if life.failures < thresholds.failures_before_action
            else "the next automatic run acts"
        ),
        LifeState.RECOVERING: "a recovery is running, or healthy probes are being counted",
        LifeState.AWAITING_APPROVAL: (
            f"recovery approve {pending[0]}" if pending else "the next run asks for an approval"
        ),
        LifeState.BLOCKED: _blocked_step(life),
        LifeState.FAILED: "cooling down; then the chain runs again",
        LifeState.ESCALATED: (
            f"a person must act: recovery recover {name} --override-limits --reason TEXT --as YOU"
        ),
        LifeState.DISABLED: f"recovery enable {name}, or wait for the disable to end",
        LifeState.SHADOW: "shadow mode records what would run; nothing acts",
    }
    return steps[life.state]
