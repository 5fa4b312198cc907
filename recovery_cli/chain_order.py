"""The order a chain runs in: as configured, or (``chain_order: adaptive``) its automatic
steps ranked by how well each has fixed the failure at hand.

The rule, in full (the playbook has a worked example):

- a strategy's record is the trail's ``step`` records of that component, strategy and
  failure type within ``adaptive.window_days``; a run is a step that succeeded or failed
  (an interrupted one is no run); a success is a step that succeeded and left the component
  healthy (``health_after: healthy``);
- a strategy that needs approval is a fence: it never moves, and no step moves across it;
- between two fences, the automatic strategies with at least ``min_runs`` runs are sorted
  by the lower bound of their success rate's Wilson interval, highest first, among the
  places they hold; a tie keeps the configured order; a strategy with fewer runs keeps its
  own place;
- no strategy is added or dropped.

``rank`` is a pure function of the records it is given: no clock, no randomness."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from recovery_cli.audit import Event, Record, parse_ts_or
from recovery_cli.handlers.base import Health
from recovery_cli.policy import DAY_SECONDS, Outcome
from recovery_cli.success_rate import wilson

if TYPE_CHECKING:
    from recovery_cli.config import Config
    from recovery_cli.store import Store

Mode = Literal["configured", "adaptive", "requested"]


@dataclass(frozen=True)
class StrategyBasis:
    """What one strategy's place rests on."""

    strategy: str
    runs: int
    successes: int
    wilson_low: float
    needs_approval: bool
    ranked: bool  # automatic with at least min_runs runs: it took part in the sort

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "successes": self.successes,
            "wilson_low": round(self.wilson_low, 4),
            "approval": "required" if self.needs_approval else "auto",
            "ranked": self.ranked,
        }


@dataclass(frozen=True)
class ChainOrder:
    mode: Mode
    order: tuple[str, ...]
    configured: tuple[str, ...]
    failure_type: str | None = None
    min_runs: int = 0
    window_days: int = 0
    basis: tuple[StrategyBasis, ...] = ()

    @property
    def why(self) -> str:
        if self.mode == "requested":
            return "one strategy, named by the request"
        if self.mode == "configured":
            return "configured order"
        lows = {b.strategy: b.wilson_low for b in self.basis if b.ranked}
        if not lows:
            return f"configured order stands: no automatic strategy has {self.min_runs} runs"
        ranked = ", ".join(f"{s} {lows[s]:.3f}" for s in dict.fromkeys(self.order) if s in lows)
        if self.order == self.configured:
            return f"configured order stands: already best first by Wilson lower bound ({ranked})"
        rest = "; the other steps keep their places" if len(lows) < len(self.basis) else ""
        return f"ranked by Wilson lower bound ({ranked}){rest}"

    def to_record(self) -> dict[str, Any]:
        """The ``chain_order`` field of an attempt record: names and numbers only."""
        data: dict[str, Any] = {"mode": self.mode, "order": list(self.order), "why": self.why}
        if self.mode == "adaptive":
            data["configured"] = list(self.configured)
            data["failure_type"] = self.failure_type
            data["min_runs"] = self.min_runs
            data["window_days"] = self.window_days
            data["basis"] = {b.strategy: b.to_json() for b in self.basis}
        return data


def configured(chain: Sequence[str], mode: Mode = "configured") -> ChainOrder:
    return ChainOrder(mode, tuple(chain), tuple(chain))


def step_counts(
    records: Iterable[Record], component: str, failure_type: str | None
) -> dict[str, tuple[int, int]]:
    """Per strategy: (runs, successes) of the component's steps for ``failure_type``."""
    counts: dict[str, tuple[int, int]] = {}
    for record in records:
        if record.get("event") != Event.STEP or record.get("component") != component:
            continue
        if (record.get("failure_type") or None) != (failure_type or None):
            continue
        strategy, outcome = record.get("strategy"), record.get("outcome")
        if not isinstance(strategy, str) or outcome not in (Outcome.SUCCESS, Outcome.FAILED):
            continue
        fixed = outcome == Outcome.SUCCESS and record.get("health_after") == Health.HEALTHY
        runs, successes = counts.get(strategy, (0, 0))
        counts[strategy] = (runs + 1, successes + fixed)
    return counts


def rank(
    chain: Sequence[str],
    needs_approval: Callable[[str], bool],
    counts: dict[str, tuple[int, int]],
    min_runs: int,
) -> tuple[tuple[str, ...], tuple[StrategyBasis, ...]]:
    """The adaptive order of ``chain`` and the basis of each place (see the module)."""
    basis = []
    for strategy in chain:
        runs, successes = counts.get(strategy, (0, 0))
        fence = needs_approval(strategy)
        low = wilson(successes, runs).low
        basis.append(
            StrategyBasis(strategy, runs, successes, low, fence, not fence and runs >= min_runs)
        )
    order = list(chain)
    for segment in _segments(basis):
        slots = [i for i in segment if basis[i].ranked]
        best_first = sorted(slots, key=lambda i: (-basis[i].wilson_low, i))
        for slot, source in zip(slots, best_first, strict=True):
            order[slot] = chain[source]
    return tuple(order), tuple(basis)


def _segments(basis: Sequence[StrategyBasis]) -> list[list[int]]:
    """The indexes between fences (strategies that need approval)."""
    segments: list[list[int]] = [[]]
    for index, entry in enumerate(basis):
        if entry.needs_approval:
            segments.append([])
        else:
            segments[-1].append(index)
    return [s for s in segments if s]


def resolve(config: Config, store: Store, name: str, failure_type: str | None) -> ChainOrder:
    """The order the component's chain for ``failure_type`` runs in now. Adaptive: reads the
    step records of the last ``adaptive.window_days`` only."""
    chain = config.chain_for(name, failure_type)
    if config.components[name].chain_order != "adaptive":
        return configured(chain)
    settings = config.adaptive(name)
    since = store.now() - settings.window_days * DAY_SECONDS
    records = (
        r for r in store.step_records(name, since) if parse_ts_or(r.get("ts"), -1.0) >= since
    )
    counts = step_counts(records, name, failure_type)
    order, basis = rank(chain, lambda s: config.needs_approval(name, s), counts, settings.min_runs)
    return ChainOrder(
        "adaptive",
        order,
        tuple(chain),
        failure_type,
        settings.min_runs,
        settings.window_days,
        basis,
    )


def explain(record: dict[str, Any]) -> list[str]:
    """What ``status --explain`` and ``recover --dry-run`` print about an order, from its
    ``to_record()``: the order, why, and each strategy's numbers."""
    head = f"chain ({record.get('mode')}): {', '.join(record.get('order', ())) or '-'}"
    if record.get("mode") != "adaptive":
        return [head]
    min_runs = record.get("min_runs")
    lines = [
        f"{head} (failure {record.get('failure_type') or '-'})",
        f"  why: {record.get('why')}",
        f"  basis: step records of the last {record.get('window_days')} days; "
        f"a strategy is ranked from {min_runs} runs",
    ]
    basis = record.get("basis", {})
    for strategy in dict.fromkeys(record.get("order", ())):  # in the order they run
        b = basis.get(strategy)
        if not isinstance(b, dict):
            continue
        if b["ranked"]:
            place = "ranked"
        elif b["approval"] == "required":
            place = "needs approval: keeps its place"
        else:
            place = f"fewer than {min_runs} runs: keeps its place"
        lines.append(
            f"  {strategy}: {b['successes']} of {b['runs']} runs succeeded, "
            f"Wilson low {b['wilson_low']:.3f} ({place})"
        )
    return lines
