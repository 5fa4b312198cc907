"""What every part of a recovery run shares: the request, and the run's collaborators."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from recovery_cli.config import Config
from recovery_cli.context import Environment
from recovery_cli.degraded import DegradedModes
from recovery_cli.runtime import Components
from recovery_cli.store import Store

Confirm = Callable[[str, str, str], bool]  # (component, strategy, question) -> yes?


@dataclass(frozen=True)
class RecoverRequest:
    components: tuple[str, ...] = ()
    strategy: str | None = None
    dry_run: bool = False
    yes: bool = False
    force: bool = False
    operator: str | None = None
    trigger: str = "manual"


class RunParts:
    def __init__(
        self,
        config: Config,
        store: Store,
        env: Environment,
        components: Components,
        confirm: Confirm | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.env = env
        self.components = components
        self.confirm = confirm
        self.degraded = DegradedModes(config, store)
        self.warnings: list[str] = []

    @property
    def wait(self) -> float:
        """How long to wait for another run's state lock."""
        return self.config.defaults.lock_wait_seconds
