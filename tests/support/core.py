"""The core library in-process, with an injected clock: for policy tests that move time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from recovery_cli.config import Config, parse_config
from recovery_cli.environment import Environment
from recovery_cli.handler_calls import Components
from recovery_cli.orchestrator import Orchestrator, RecoverRequest
from recovery_cli.results import ComponentReport
from recovery_cli.store import Store
from tests.support.clock import FakeClock


@dataclass
class Core:
    config: Config
    store: Store
    clock: FakeClock
    env: Environment

    def orchestrator(self) -> Orchestrator:
        return Orchestrator(
            self.config, self.store, self.env, Components(self.config, self.env, self.store.root)
        )

    def recover(self, *names: str, **options: Any) -> list[ComponentReport]:
        request = RecoverRequest(components=names, trigger="cron", **options)
        return self.orchestrator().recover(request)

    def approve(self, approval_id: str, operator: str | None = None) -> ComponentReport:
        return self.orchestrator().approve(approval_id, operator)

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        rows = list(self.store.audit.read_forward())
        return [r for r in rows if event is None or r["event"] == event]


def make_core(
    tmp: Path, config: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Core:
    clock = FakeClock()
    env = Environment(
        environ={"USER": "tester", **(environ or {})}, clock=clock, interactive=False, pid=4242
    )
    parsed = parse_config(yaml.safe_dump(dict(config)), "test.yml")
    return Core(parsed, Store(tmp / "state", env), clock, env)
