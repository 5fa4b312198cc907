"""``disable`` / ``enable``: suspend automatic recovery of a component for a while."""

from __future__ import annotations

from recovery_cli.audit import Event
from recovery_cli.config import Config
from recovery_cli.errors import BackendUnavailable, UsageError
from recovery_cli.handlers.util import format_ts
from recovery_cli.state_file import DisabledEntry
from recovery_cli.store import Store


def disable(
    config: Config, store: Store, component: str, seconds: float, reason: str, operator: str
) -> float:
    _known(config, component, store)
    if seconds <= 0:
        raise UsageError("--for must be a positive duration")
    if not reason.strip():
        raise UsageError("--reason must say why (it is recorded)")
    until = store.now() + seconds
    with store.transaction(config.defaults.lock_wait_seconds) as tx:
        tx.state.disabled[component] = DisabledEntry(until, store.now(), reason, operator)
        tx.changed()
        tx.record(
            Event.DISABLED,
            component,
            operator=operator,
            detail=f"until {format_ts(until)}: {reason}",
        )
    return until


def enable(config: Config, store: Store, component: str, operator: str) -> bool:
    _known(config, component, store)
    with store.transaction(config.defaults.lock_wait_seconds) as tx:
        if tx.state.disabled.pop(component, None) is None:
            return False
        tx.changed()
        tx.record(Event.ENABLED, component, operator=operator, detail="enabled early")
    return True


def _known(config: Config, component: str, store: Store) -> None:
    if component not in config.components:
        raise UsageError(
            f"unknown component {component!r} (configured: {', '.join(config.components)})"
        )
    problem = store.backend_problem() if config.components[component].scope == "fleet" else None
    if problem:  # a fleet component's disable lives in the database, for every host
        raise BackendUnavailable(f"{component} is a fleet component and {problem}")
