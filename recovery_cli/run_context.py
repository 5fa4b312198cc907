"""What every part of a recovery run shares: the request, and the run's collaborators as one
plain object handed to each part (no base class, nothing patched after construction)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recovery_cli.alerts import Outbox
from recovery_cli.config import Config
from recovery_cli.degraded import DegradedModes
from recovery_cli.environment import Environment
from recovery_cli.handler_calls import Components
from recovery_cli.store import Store
from recovery_cli.tracker import Tracker

DEFAULT_PROMPT_TIMEOUT = 300.0
OVERRIDE_CONFLICTS = "override_conflicts"


@dataclass(frozen=True)
class RecoverRequest:
    components: tuple[str, ...] = ()
    strategy: str | None = None
    dry_run: bool = False
    yes: bool = False
    force: bool = False
    operator: str | None = None
    trigger: str = "manual"
    override_reason: str | None = None  # --override-limits: a person passes cap and cooldown
    prompt_timeout: float = DEFAULT_PROMPT_TIMEOUT
    # --override-conflicts: the named strategy may overwrite what a person changed
    override_conflicts: bool = False

    def extra_params(self, strategy: str) -> dict[str, Any]:
        """What this request adds to ``strategy``'s configured params."""
        if self.override_conflicts and strategy == self.strategy:
            return {OVERRIDE_CONFLICTS: True}
        return {}

    @property
    def by_person(self) -> bool:
        """A person at a terminal or one who named themselves: automation's own limits
        (thresholds, grace, flapping, blast radius) do not hold them back."""
        return self.trigger == "manual"


@dataclass
class RunContext:
    config: Config
    store: Store
    env: Environment
    components: Components
    outbox: Outbox = field(default_factory=Outbox)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.degraded = DegradedModes(self.config, self.store)
        self.tracker = Tracker(self.config, self.env, self.outbox)

    @property
    def wait(self) -> float:
        """How long to wait for another run's state lock."""
        return self.config.defaults.lock_wait_seconds

    def send_alerts(self) -> None:
        """Never called while a component lock is held. A resolution no target took is
        kept in the state file and sent again by the next run; a firing alert no target
        took is re-sent by the next run."""
        sent = self.outbox.flush(self.config.alerting)
        self.warnings += sent.warnings
        if sent.failed and not self.store.read_only:
            with self.store.transaction(self.wait) as tx:
                self.tracker.remember_unsent(tx, sent.failed)

    def resend_unsent(self) -> None:
        """Queue the resolutions an earlier run could not deliver."""
        if self.store.read_only or not self.store.load_state().unsent_alerts:
            return
        with self.store.transaction(self.wait) as tx:
            self.tracker.take_unsent(tx)
