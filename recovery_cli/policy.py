"""Every gate, in one order, as one pure function of what is known about a component.

``decide(facts, request, now)`` is used by ``recover``, ``approve`` and the prompt alike: it
says whether to act, hold, block, only record (shadow) or wait for an approval, why, and which
lifecycle state that puts the component in. Attempt windows and cooldowns come from the audit
trail itself (``build_window``): an attempt counts from its intent record, written before the
first strategy runs. Records dated after ``now`` (the clock was stepped back) stay inside every
window, so stepping the clock back never frees budget.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from recovery_cli.audit import Event, Record, parse_ts_or
from recovery_cli.handlers.util import format_ts
from recovery_cli.lifecycle import Life, LifeState, Thresholds
from recovery_cli.state_file import DisabledEntry

WINDOW_SECONDS = 3600
DAY_SECONDS = 86400
PERSON_TRIGGER = "manual"


class BlockReason(enum.StrEnum):
    DISABLED = "disabled"
    DEPENDENCY = "dependency"
    LOCK_HELD = "lock_held"
    FLAPPING = "flapping"
    BLAST_RADIUS = "blast_radius"
    DAILY_CAP = "daily_cap"
    HOURLY_CAP = "hourly_cap"
    COOLDOWN = "cooldown"
    APPROVAL = "approval"
    SHADOW = "shadow"
    PLAN_CHANGED = "plan_changed"
    BACKEND_UNAVAILABLE = "backend_unavailable"  # a fleet component with its database away
    FLEET_BUDGET = "fleet_budget"  # fleet.max_concurrent_actions hosts are acting already


class HoldReason(enum.StrEnum):
    BELOW_THRESHOLD = "below_threshold"  # fewer failing probes in a row than required
    GRACE = "grace"  # a recovery just ran: give it time before counting failures


class Outcome(enum.StrEnum):
    STARTED = "started"
    SUCCESS = "success"
    RECOVERED_WITH_LOSS = "recovered_with_loss"  # healthy, but data a step discarded is gone
    FAILED = "failed"
    AWAITING_APPROVAL = "awaiting_approval"
    SHADOW = "shadow"
    BLOCKED = "blocked"
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM mid-step; the step's commands were ended


class Verdict(enum.StrEnum):
    ACT = "act"
    HOLD = "hold"
    BLOCK = "block"
    SHADOW = "shadow"
    AWAIT = "await"  # the first step needs an approval nobody gave yet


@dataclass(frozen=True)
class Window:
    """What the audit trail says about one component's recent attempts."""

    attempt_times: tuple[float, ...]  # intent records inside the hour (future ones included)
    cap: int
    last_failure: float | None  # the last automatic chain that ended unhealthy
    cooldown_seconds: int
    now: float
    day_times: tuple[float, ...] = ()  # intent records inside the last 24 hours
    day_cap: int | None = None

    @property
    def used(self) -> int:
        return len(self.attempt_times)

    @property
    def cap_reached(self) -> bool:
        return self.used >= self.cap

    @property
    def day_cap_reached(self) -> bool:
        return self.day_cap is not None and len(self.day_times) >= self.day_cap

    @property
    def cap_frees_at(self) -> float | None:
        """When the oldest attempt that keeps the cap full leaves the window."""
        if not self.cap_reached:
            return None
        ordered = sorted(self.attempt_times)
        return ordered[self.used - self.cap] + WINDOW_SECONDS

    @property
    def cooldown_until(self) -> float | None:
        if self.last_failure is None or self.cooldown_seconds == 0:
            return None
        until = self.last_failure + self.cooldown_seconds
        return until if until > self.now else None

    @property
    def next_allowed(self) -> float:
        candidates = [t for t in (self.cap_frees_at, self.cooldown_until) if t is not None]
        return max(candidates, default=self.now)


@dataclass(frozen=True)
class Facts:
    """What is known about one component when a run decides."""

    component: str
    mode: str
    life: Life
    window: Window
    thresholds: Thresholds
    disabled: DisabledEntry | None = None
    dependencies_down: Sequence[str] = ()
    root_cause: Sequence[str] = ()  # the down roots the down dependencies lead to
    lock_held: bool = False
    unhealthy_components: int = 1
    max_unhealthy: int | None = None
    plan_matches: bool = True  # approve: the approved plan is still what is needed
    backend_problem: str | None = None  # why the shared state cannot be used (fleet scope)
    hosts_acting: int = 0  # other hosts acting on fleet components right now
    fleet_budget: int | None = None  # fleet.max_concurrent_actions, for a fleet component


@dataclass(frozen=True)
class Request:
    """What the run asks for."""

    by_person: bool = False  # a person at a terminal, or one who named themselves (--as)
    override_reason: str | None = None  # --override-limits: pass cap and cooldown
    approved: bool = False  # the first step's approval is given (approve ID, --yes)
    first_step_needs_approval: bool = False
    force: bool = False


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    state: LifeState
    reason: str | None = None
    detail: str = ""
    retry_at: float | None = None
    explain: tuple[str, ...] = field(default_factory=tuple)
    root_cause: tuple[str, ...] = ()  # a dependency block: the roots that explain it

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ACT


def lookback_since(now: float, cooldown_seconds: int, day_cap: int | None = None) -> str:
    """The oldest timestamp any gate needs to see."""
    longest = max(WINDOW_SECONDS, cooldown_seconds, DAY_SECONDS if day_cap else 0)
    return format_ts(now - longest)


def build_window(
    records: Iterable[Record],
    component: str,
    cap: int,
    cooldown: int,
    now: float,
    day_cap: int | None = None,
) -> Window:
    starts: list[float] = []
    day: list[float] = []
    last_failure: float | None = None
    for record in records:
        if record.get("event") != Event.ATTEMPT or record.get("component") != component:
            continue
        if record.get("follow_up"):
            continue  # a healthy component's follow-up step: neither a cap's nor a cooldown's
        ts = parse_ts_or(record.get("ts"), now)  # unreadable: counted as now, never freed
        outcome = record.get("outcome")
        if outcome == Outcome.STARTED:
            if ts > now - WINDOW_SECONDS:
                starts.append(ts)
            if ts > now - DAY_SECONDS:
                day.append(ts)
        elif outcome == Outcome.FAILED and _automatic(record):
            last_failure = ts if last_failure is None else max(last_failure, ts)
    return Window(tuple(starts), cap, last_failure, cooldown, now, tuple(day), day_cap)


def _automatic(record: Record) -> bool:
    """Only an exhausted automatic chain starts the cooldown (a person's run does not)."""
    return record.get("trigger") != PERSON_TRIGGER


def disabled_entry(
    disabled: Mapping[str, DisabledEntry], component: str, now: float
) -> DisabledEntry | None:
    entry = disabled.get(component)
    if entry is None or entry.until <= now:
        return None
    return entry


def decide(facts: Facts, request: Request, now: float) -> Decision:
    """The first gate that refuses, in the documented order; else act (or wait for an
    approval). Limits that protect against automation (thresholds, grace, flapping, blast
    radius) do not hold a person back; a person's --override-limits passes the caps and the
    cooldown, never a disable, a dependency or a required approval."""
    explain = explain_window(facts.window)
    for gate in GATES:
        decision = gate(facts, request, now)
        if decision is not None:
            return replace(decision, explain=explain)
    return Decision(Verdict.ACT, LifeState.RECOVERING, explain=explain)


def _backend(facts: Facts, request: Request, now: float) -> Decision | None:
    """A fleet component's caps, approvals and disables are in the database: without it,
    nothing is known about them, so nothing is done (fail closed)."""
    if facts.backend_problem is None:
        return None
    return _block(BlockReason.BACKEND_UNAVAILABLE, facts.backend_problem)


def _fleet_budget(facts: Facts, request: Request, now: float) -> Decision | None:
    if facts.fleet_budget is None or facts.hosts_acting < facts.fleet_budget:
        return None
    if request.override_reason:
        return None
    return _block(
        BlockReason.FLEET_BUDGET,
        f"{facts.hosts_acting} other host(s) are acting on fleet components "
        f"(fleet.max_concurrent_actions {facts.fleet_budget})",
    )


def _disabled(facts: Facts, request: Request, now: float) -> Decision | None:
    if facts.disabled is None:
        return None
    until = float(facts.disabled.until)
    detail = f"disabled until {format_ts(until)}: {facts.disabled.reason}"
    return _block(BlockReason.DISABLED, detail, LifeState.DISABLED, until)


def _shadow(facts: Facts, request: Request, now: float) -> Decision | None:
    if facts.mode != "shadow":
        return None
    return Decision(Verdict.SHADOW, LifeState.SHADOW, BlockReason.SHADOW, "shadow mode")


def _dependency(facts: Facts, request: Request, now: float) -> Decision | None:
    if not facts.dependencies_down:
        return None
    names = ", ".join(facts.dependencies_down)
    detail = f"dependency not healthy: {names}"
    roots = tuple(sorted(facts.root_cause))
    if roots and set(roots) != set(facts.dependencies_down):
        detail += f" (root cause: {', '.join(roots)})"
    return replace(_block(BlockReason.DEPENDENCY, detail), root_cause=roots)


def _lock(facts: Facts, request: Request, now: float) -> Decision | None:
    if not facts.lock_held:
        return None
    return _block(BlockReason.LOCK_HELD, "another recovery of this component is running")


def _plan(facts: Facts, request: Request, now: float) -> Decision | None:
    if facts.plan_matches:
        return None
    return _block(BlockReason.PLAN_CHANGED, "the plan changed since the approval was requested")


def _grace(facts: Facts, request: Request, now: float) -> Decision | None:
    if request.by_person or request.force or not facts.life.in_grace(now, facts.thresholds):
        return None
    left = facts.life.grace_until - now
    detail = f"a recovery just ran: failing probes are not counted for {left:.0f}s more"
    return Decision(Verdict.HOLD, LifeState.RECOVERING, HoldReason.GRACE, detail)


def _threshold(facts: Facts, request: Request, now: float) -> Decision | None:
    needed = facts.thresholds.failures_before_action
    if request.by_person or request.force or facts.life.failures >= needed:
        return None
    detail = f"{facts.life.failures} of {needed} failing probes in a row before acting"
    return Decision(Verdict.HOLD, LifeState.FAILING, HoldReason.BELOW_THRESHOLD, detail)


def _flapping(facts: Facts, request: Request, now: float) -> Decision | None:
    limit = facts.thresholds.flap_max
    flaps = facts.life.flaps(now, facts.thresholds)
    if request.by_person or not limit or flaps <= limit:
        return None
    window = facts.thresholds.flap_window_seconds
    detail = f"went down {flaps} times in {window:g}s (flap_max {limit}): a person must look"
    return _block(BlockReason.FLAPPING, detail, LifeState.ESCALATED)


def _blast_radius(facts: Facts, request: Request, now: float) -> Decision | None:
    limit = facts.max_unhealthy
    if request.by_person or limit is None or facts.unhealthy_components <= limit:
        return None
    detail = (
        f"{facts.unhealthy_components} components are unhealthy at once, apart from what a "
        f"down dependency explains (max_unhealthy {limit}): automatic actions stop; a person "
        "can still act"
    )
    return _block(BlockReason.BLAST_RADIUS, detail)


def _day_cap(facts: Facts, request: Request, now: float) -> Decision | None:
    window = facts.window
    if request.override_reason or not window.day_cap_reached:
        return None
    detail = f"{len(window.day_times)} attempts in 24 hours (max_attempts_per_day {window.day_cap})"
    oldest = min(window.day_times) + DAY_SECONDS
    return _block(BlockReason.DAILY_CAP, detail, LifeState.ESCALATED, oldest)


def _hour_cap(facts: Facts, request: Request, now: float) -> Decision | None:
    window = facts.window
    if request.override_reason or not window.cap_reached:
        return None
    frees = window.cap_frees_at
    used = f"{window.used} attempts in the last hour (cap {window.cap})"
    return _block(BlockReason.HOURLY_CAP, f"{used}; next slot at {_fmt(frees)}", retry_at=frees)


def _cooldown(facts: Facts, request: Request, now: float) -> Decision | None:
    until = facts.window.cooldown_until
    if request.override_reason or until is None:
        return None
    left = until - now
    detail = f"cooling down after a failed recovery: {left:.0f}s left (until {_fmt(until)})"
    return _block(BlockReason.COOLDOWN, detail, LifeState.FAILED, until)


def _approval(facts: Facts, request: Request, now: float) -> Decision | None:
    if request.approved or not request.first_step_needs_approval:
        return None
    detail = "the first step needs an approval"
    return Decision(Verdict.AWAIT, LifeState.AWAITING_APPROVAL, BlockReason.APPROVAL, detail)


GATES = (
    _backend,
    _disabled,
    _shadow,
    _dependency,
    _lock,
    _plan,
    _grace,
    _threshold,
    _flapping,
    _blast_radius,
    _fleet_budget,
    _day_cap,
    _hour_cap,
    _cooldown,
    _approval,
)


def _block(
    reason: BlockReason,
    detail: str,
    state: LifeState = LifeState.BLOCKED,
    retry_at: float | None = None,
) -> Decision:
    return Decision(Verdict.BLOCK, state, reason, detail, retry_at)


def explain_window(window: Window) -> tuple[str, ...]:
    lines = [
        f"window: attempts since {_fmt(window.now - WINDOW_SECONDS)}: "
        f"{window.used} of cap {window.cap}"
        + (
            f" (at {', '.join(_fmt(t) for t in sorted(window.attempt_times))})"
            if window.attempt_times
            else ""
        )
    ]
    if window.day_cap is not None:
        lines.append(f"day: {len(window.day_times)} of max_attempts_per_day {window.day_cap}")
    future = [t for t in window.attempt_times if t > window.now]
    if future:
        lines.append(f"clock: {len(future)} attempt(s) dated after now are kept inside the window")
    if window.cap_reached:
        lines.append(
            f"cap: full; oldest counted attempt + {WINDOW_SECONDS}s = {_fmt(window.cap_frees_at)}"
        )
    if window.last_failure is not None:
        until = window.last_failure + window.cooldown_seconds
        state = "active" if window.cooldown_until is not None else "over"
        lines.append(
            f"cooldown: last failure {_fmt(window.last_failure)} + {window.cooldown_seconds}s"
            f" = {_fmt(until)} ({state})"
        )
    return tuple(lines)


def _fmt(epoch: float | None) -> str:
    return "-" if epoch is None else format_ts(epoch)[:19].replace("T", " ") + "Z"
