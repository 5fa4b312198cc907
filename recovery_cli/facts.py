"""The facts ``policy.decide`` looks at, gathered from the run: the component's lifecycle,
its attempt window, disables, dependencies, locks, how many components are down, approvals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from recovery_cli import policy
from recovery_cli.lifecycle import Life
from recovery_cli.policy import Decision
from recovery_cli.root_cause import root_causes
from recovery_cli.run_context import RecoverRequest, RunContext
from recovery_cli.store import Transaction


@dataclass(frozen=True)
class Asking:
    """What a run asks of the gates beyond its request."""

    lock_held: bool = False
    unhealthy: int = 0  # components down right now (blast radius)
    approved: bool = False  # the first step's approval is given
    plan_matches: bool = True


def decide(
    ctx: RunContext,
    tx: Transaction,
    name: str,
    life: Life,
    chain: Sequence[str],
    request: RecoverRequest,
    asking: Asking,
) -> Decision:
    """Gather the facts and ask ``policy.decide``: the one place every gate is decided."""
    config = ctx.config
    now = ctx.store.now()
    problem, acting, budget = fleet_facts(ctx, name)
    facts = policy.Facts(
        component=name,
        mode=config.components[name].mode,
        life=life,
        window=ctx.store.window(
            name, config.hourly_cap(name), config.cooldown(name), config.daily_cap(name)
        ),
        thresholds=config.thresholds(name),
        disabled=policy.disabled_entry(tx.state.disabled, name, now),
        dependencies_down=dependencies_down(ctx, name),
        root_cause=root_cause(ctx, name),
        lock_held=asking.lock_held,
        unhealthy_components=asking.unhealthy,
        max_unhealthy=max_unhealthy(ctx),
        plan_matches=asking.plan_matches,
        backend_problem=problem,
        hosts_acting=acting,
        fleet_budget=budget,
    )
    wanted = policy.Request(
        by_person=request.by_person,
        override_reason=request.override_reason,
        approved=asking.approved or request.yes,
        first_step_needs_approval=bool(chain) and config.needs_approval(name, chain[0]),
        force=request.force,
    )
    return policy.decide(facts, wanted, now)


def fleet_facts(ctx: RunContext, name: str) -> tuple[str | None, int, int | None]:
    """What the shared state says about a fleet component: why it cannot be used, how many
    other hosts are acting, the budget (nothing, for a host component)."""
    if ctx.config.components[name].scope != "fleet":
        return None, 0, None
    budget = ctx.config.fleet.max_concurrent_actions
    problem = ctx.store.backend_problem()
    acting = ctx.store.hosts_acting() if budget and not problem else 0
    return problem, acting, budget


def probe_dependencies(ctx: RunContext, name: str) -> None:
    """Probe the component's dependencies now, and theirs while they are down (the results
    are kept for the run), so the gate decision and the root cause that read them, inside
    the state transaction, never wait on a probe."""
    _down_below(ctx, name)


def dependencies_down(ctx: RunContext, name: str) -> list[str]:
    deps = ctx.config.components[name].depends_on
    return [d for d in deps if not ctx.components.probe(d).healthy]


def root_cause(ctx: RunContext, name: str) -> tuple[str, ...]:
    """The down roots the component's down dependencies lead to (none when none is down)."""
    down = _down_below(ctx, name)
    if not down:
        return ()
    return root_causes(ctx.config.dependency_graph(), {name, *down})[name]


def _down_below(ctx: RunContext, name: str) -> set[str]:
    """The down components reachable from ``name`` through down dependencies."""
    graph = ctx.config.dependency_graph()
    down: set[str] = set()
    stack = [name]
    while stack:
        for dep in graph.get(stack.pop(), ()):
            if dep not in down and dep != name and not ctx.components.probe(dep).healthy:
                down.add(dep)
                stack.append(dep)
    return down


def max_unhealthy(ctx: RunContext) -> int | None:
    """``defaults.max_unhealthy`` as a count (a percentage is of the configured components)."""
    limit = ctx.config.defaults.max_unhealthy
    if limit is None or isinstance(limit, int):
        return limit
    percent = float(limit.rstrip("%"))
    return math.floor(len(ctx.config.components) * percent / 100)
