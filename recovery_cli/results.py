"""Result types the core returns and ``render`` turns into tables or JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from recovery_cli.errors import ExitCode


@dataclass(frozen=True)
class StepReport:
    strategy: str
    ok: bool
    healthy_after: bool
    detail: str
    failure_type: str | None
    duration_s: float
    tries: int
    lost: dict[str, Any] | None = None  # what the step discarded and could not give back


@dataclass(frozen=True)
class ComponentReport:
    component: str
    code: ExitCode
    # healthy, recovered, recovered_with_loss, failed, blocked, awaiting_approval, shadow,
    # dry_run, unavailable
    outcome: str
    health: str
    failure_type: str | None = None
    detail: str = ""
    reason: str | None = None
    steps: tuple[StepReport, ...] = ()
    approval_id: str | None = None
    attempt_id: str | None = None
    plan: tuple[str, ...] = field(default_factory=tuple)
    # the order the chain runs in and why (``chain_order.ChainOrder.to_record``)
    chain_order: dict[str, Any] | None = None
    # blocked by the dependency gate: the roots its down dependencies lead to
    root_cause: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["code"] = int(self.code)
        return data
