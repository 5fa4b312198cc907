"""``recovery status``: where each component stands with the gates, and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from recovery_cli import approvals, policy
from recovery_cli.audit import format_ts
from recovery_cli.config import Config
from recovery_cli.registry import is_available
from recovery_cli.runtime import Components
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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def component_status(
    config: Config, store: Store, components: Components, probe: bool
) -> list[ComponentStatus]:
    state = store.load_state()
    now = store.now()
    rows = []
    for name, component in config.components.items():
        window = store.window(name, config.hourly_cap(name), config.cooldown(name))
        disabled = policy.disabled_entry(state.disabled, name, now)
        result = components.probe(name) if probe else None
        cooldown_until = window.cooldown_until
        next_allowed = (
            max(window.next_allowed, float(disabled["until"])) if disabled else window.next_allowed
        )
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
                disabled_until=format_ts(float(disabled["until"])) if disabled else None,
                degraded_modes=sorted(
                    m for m, v in state.degraded.items() if v.get("component") == name
                ),
                pending_approvals=[
                    a["id"] for a in approvals.pending(state, now) if a["component"] == name
                ],
                next_allowed="now" if next_allowed <= now else format_ts(next_allowed),
                explain=list(policy.explain_window(window)),
            )
        )
    return rows
