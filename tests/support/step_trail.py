"""Step records written through a real store: the trail an adaptive chain learns from."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recovery_cli.audit import Event
from recovery_cli.environment import Environment
from recovery_cli.store import Store
from tests.support.cli import command_component
from tests.support.clock import FakeClock

# a command probe that exits 1 (degraded) finds this failure type
FLAG_FAILURE = "probe_warning"


def flag_component(flag: Path, **extra: Any) -> dict[str, Any]:
    """A ``kind: command`` component down (degraded) until ``flag`` exists: ``reconnect``
    succeeds without fixing it, ``restart_container`` fixes it."""
    return command_component(
        ["test", "-f", str(flag)],
        {"reconnect": ["true"], "restart_container": ["touch", str(flag)]},
        **extra,
    )


def seed_steps(
    store: Store,
    component: str,
    failure_type: str,
    results: Mapping[str, tuple[int, int]],
    host: str | None = None,
) -> list[str]:
    """Per strategy ``(runs, fixed)``: ``runs`` step records, ``fixed`` of them a success
    that left the component healthy, the rest failed. Returns the records' ids."""
    ids = []
    with store.transaction(10) as tx:
        for strategy, (runs, fixed) in results.items():
            for index in range(runs):
                ok = index < fixed
                record = tx.record(
                    Event.STEP,
                    component,
                    strategy=strategy,
                    attempt_id=f"seed{index:08d}",
                    trigger="cron",
                    outcome="success" if ok else "failed",
                    failure_type=failure_type,
                    detail="seeded",
                    duration_s=0.1,
                    health_after="healthy" if ok else "down",
                    **({"host": host} if host else {}),
                )
                ids.append(record["id"])
    return ids


def seed_state_dir(
    state_dir: Path,
    component: str,
    failure_type: str,
    results: Mapping[str, tuple[int, int]],
    at: float,
) -> list[str]:
    """``seed_steps`` into the state dir a ``recovery`` command will use, dated ``at``."""
    env = Environment(environ={"USER": "tester"}, clock=FakeClock(at))
    return seed_steps(Store(state_dir, env), component, failure_type, results)
