"""Degraded modes: entered when a component's chain is exhausted on a failure users feel
(the mode's ``failure_types``), left when it is healthy.

The mode's optional hooks (argv lists) tell the rest of the system to switch capabilities;
a hook that fails is recorded, never fatal."""

from __future__ import annotations

from recovery_cli.audit import Event
from recovery_cli.config import Config, Hook
from recovery_cli.handlers.util import run_command, trim
from recovery_cli.state_file import DegradedEntry
from recovery_cli.store import Store


class DegradedModes:
    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store

    def enter(
        self, component: str, operator: str, why: str, failure_type: str | None = None
    ) -> list[str]:
        """Enter the component's modes meant for ``failure_type`` (a mode's
        ``failure_types``, else its kind's: the failures users feel)."""
        modes = self.config.modes_for(component, failure_type)
        if not modes:
            return []
        entered = []
        with self.store.transaction(self.config.defaults.lock_wait_seconds) as tx:
            for mode in modes:
                if mode in tx.state.degraded:
                    continue
                spec = self.config.degraded_modes[mode]
                tx.state.degraded[mode] = DegradedEntry(component, self.store.now(), why)
                tx.changed()
                tx.record(
                    Event.DEGRADED_ENTER,
                    component,
                    mode=mode,
                    operator=operator,
                    detail=why,
                    failure_type=failure_type,
                    capabilities=dict(spec.capabilities),
                )
                entered.append(mode)
        self._run_hooks(
            component, [(m, self.config.degraded_modes[m].on_enter) for m in entered], "on_enter"
        )
        return entered

    def leave(self, component: str, operator: str) -> list[str]:
        modes = self.config.modes_for(component)
        if not any(m in self.store.load_state().degraded for m in modes):
            return []  # the common healthy case: no lock, no write
        left = []
        with self.store.transaction(self.config.defaults.lock_wait_seconds) as tx:
            for mode in modes:
                if tx.state.degraded.pop(mode, None) is not None:
                    tx.changed()
                    tx.record(
                        Event.DEGRADED_EXIT,
                        component,
                        mode=mode,
                        operator=operator,
                        detail="component healthy",
                    )
                    left.append(mode)
        self._run_hooks(
            component, [(m, self.config.degraded_modes[m].on_exit) for m in left], "on_exit"
        )
        return left

    def _run_hooks(self, component: str, hooks: list[tuple[str, Hook | None]], which: str) -> None:
        for mode, hook in hooks:
            if hook is None:
                continue
            outcome = run_command(hook.command, hook.timeout_seconds)
            ok = outcome.returncode == 0
            with self.store.transaction(self.config.defaults.lock_wait_seconds) as tx:
                tx.record(
                    Event.HOOK,
                    component,
                    mode=mode,
                    hook=which,
                    outcome="success" if ok else "failed",
                    detail=trim(outcome.output or ("timed out" if outcome.timed_out else "")),
                )
