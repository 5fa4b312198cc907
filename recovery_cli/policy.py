"""The gates, as pure functions of (recent audit records, state, config values, now).

Attempt windows and cooldowns come from the audit trail itself: an attempt counts from its
intent record, written before the first action. Records dated after ``now`` (the clock was
stepped back) stay inside every window, so stepping the clock back never frees budget.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from recovery_cli.audit import Record, format_ts, parse_ts_or

WINDOW_SECONDS = 3600


class BlockReason(enum.StrEnum):
    DISABLED = "disabled"
    DEPENDENCY = "dependency"
    LOCK_HELD = "lock_held"
    HOURLY_CAP = "hourly_cap"
    COOLDOWN = "cooldown"
    APPROVAL = "approval"
    SHADOW = "shadow"
    PLAN_CHANGED = "plan_changed"


class Outcome(enum.StrEnum):
    STARTED = "started"
    SUCCESS = "success"
    FAILED = "failed"
    AWAITING_APPROVAL = "awaiting_approval"
    SHADOW = "shadow"
    BLOCKED = "blocked"
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM mid-step; the step's commands were ended


@dataclass(frozen=True)
class Window:
    """What the audit trail says about one component's recent attempts."""

    attempt_times: tuple[float, ...]  # intent records inside the window (future ones included)
    cap: int
    last_failure: float | None
    cooldown_seconds: int
    now: float

    @property
    def used(self) -> int:
        return len(self.attempt_times)

    @property
    def cap_reached(self) -> bool:
        return self.used >= self.cap

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
class GateInputs:
    component: str
    window: Window
    disabled: Mapping[str, Any] | None
    dependencies_down: Sequence[str]
    lock_held: bool


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: BlockReason | None = None
    detail: str = ""
    retry_at: float | None = None
    explain: tuple[str, ...] = field(default_factory=tuple)


def lookback_since(now: float, cooldown_seconds: int) -> str:
    """The oldest timestamp any gate needs to see."""
    return format_ts(now - max(WINDOW_SECONDS, cooldown_seconds))


def build_window(
    records: Iterable[Record], component: str, cap: int, cooldown: int, now: float
) -> Window:
    starts: list[float] = []
    last_failure: float | None = None
    for record in records:
        if record.get("event") != "attempt" or record.get("component") != component:
            continue
        ts = parse_ts_or(record.get("ts"), now)  # unreadable: counted as now, never freed
        outcome = record.get("outcome")
        if outcome == Outcome.STARTED and ts > now - WINDOW_SECONDS:
            starts.append(ts)
        elif outcome == Outcome.FAILED and (last_failure is None or ts > last_failure):
            last_failure = ts
    return Window(tuple(starts), cap, last_failure, cooldown, now)


def disabled_entry(
    disabled: Mapping[str, Mapping[str, Any]], component: str, now: float
) -> Mapping[str, Any] | None:
    entry = disabled.get(component)
    if entry is None or float(entry.get("until", 0)) <= now:
        return None
    return entry


def evaluate(inputs: GateInputs) -> Decision:
    """The first gate that refuses, in the documented order; or allowed."""
    explain = explain_window(inputs.window)
    window = inputs.window
    if inputs.disabled is not None:
        until = float(inputs.disabled["until"])
        reason = inputs.disabled.get("reason", "")
        return Decision(
            False,
            BlockReason.DISABLED,
            f"disabled until {format_ts(until)}: {reason}",
            until,
            explain,
        )
    if inputs.dependencies_down:
        names = ", ".join(inputs.dependencies_down)
        return Decision(
            False, BlockReason.DEPENDENCY, f"dependency not healthy: {names}", None, explain
        )
    if inputs.lock_held:
        return Decision(
            False,
            BlockReason.LOCK_HELD,
            "another recovery of this component is running",
            None,
            explain,
        )
    if window.cap_reached:
        frees = window.cap_frees_at
        used = f"{window.used} attempts in the last hour (cap {window.cap})"
        detail = f"{used}; next slot at {_fmt(frees)}"
        return Decision(False, BlockReason.HOURLY_CAP, detail, frees, explain)
    cooldown_until = window.cooldown_until
    if cooldown_until is not None:
        left = cooldown_until - window.now
        detail = (
            f"cooling down after a failed recovery: {left:.0f}s left (until {_fmt(cooldown_until)})"
        )
        return Decision(False, BlockReason.COOLDOWN, detail, cooldown_until, explain)
    return Decision(True, explain=explain)


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
