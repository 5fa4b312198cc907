"""Each component's incident lifecycle: one explicit state, changed only by recorded
transitions, and the counters that decide them across runs (consecutive failing and healthy
probes, the times it went down, the grace after a recovery, the alert it holds).

Everything here is pure: the store persists a ``Life`` per component in the state file, under
the store lock, and records every change of state as a ``state_changed`` audit event."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any

from recovery_cli.audit import is_timestamp


class LifeState(enum.StrEnum):
    HEALTHY = "healthy"
    FAILING = "failing"  # unhealthy, below its failure threshold (or a person's run failed)
    RECOVERING = "recovering"  # a chain is running, or it ran and healthy probes are counted
    AWAITING_APPROVAL = "awaiting_approval"
    BLOCKED = "blocked"  # a gate refused while it is down (the reason names the gate)
    FAILED = "failed"  # an automatic chain was exhausted: cooling down
    ESCALATED = "escalated"  # a budget is spent (day cap, flapping): a person must act
    DISABLED = "disabled"
    SHADOW = "shadow"


@dataclass(frozen=True)
class Thresholds:
    failures_before_action: int = 1
    successes_before_healthy: int = 1
    grace_seconds: float = 0.0
    flap_max: int = 0  # 0: no flap detection
    flap_window_seconds: float = 3600.0


@dataclass(frozen=True)
class Life:
    state: LifeState = LifeState.HEALTHY
    since: float = 0.0
    reason: str = ""
    failures: int = 0  # consecutive unhealthy probes, across runs
    successes: int = 0  # consecutive healthy probes while not yet healthy
    downs: tuple[float, ...] = ()  # when it went from healthy to unhealthy
    grace_until: float = 0.0  # after a recovery ran: failing probes are not new failures
    alert: dict[str, Any] | None = None  # the alert it holds: labels, starts_at, sent_at
    failure_type: str | None = None
    detail: str = ""  # what the last change of state said
    # what the last probe said about a working component (``on_fallback``)
    marks: tuple[str, ...] = ()
    # blocked by the dependency gate: the down roots its down dependencies lead to
    root_cause: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "state": str(self.state),
            "since": self.since,
            "reason": self.reason,
            "failures": self.failures,
            "successes": self.successes,
            "downs": list(self.downs),
            "grace_until": self.grace_until,
            "alert": self.alert,
            "failure_type": self.failure_type,
            "detail": self.detail,
            "marks": list(self.marks),
        }
        if self.root_cause:
            data["root_cause"] = list(self.root_cause)
        return data

    @classmethod
    def from_json(cls, data: object) -> Life:
        """A stored life; anything unreadable in it falls back to the default."""
        if not isinstance(data, dict):
            return cls()
        try:
            return cls(
                state=LifeState(data.get("state", "healthy")),
                since=_time(data.get("since")),
                reason=str(data.get("reason") or ""),
                failures=int(data.get("failures") or 0),
                successes=int(data.get("successes") or 0),
                downs=tuple(_time(t) for t in data.get("downs") or ()),
                grace_until=_time(data.get("grace_until")),
                alert=_alert(data.get("alert")),
                failure_type=str(data.get("failure_type") or "") or None,
                detail=str(data.get("detail") or ""),
                marks=tuple(str(m) for m in data.get("marks") or ()),
                root_cause=tuple(str(r) for r in data.get("root_cause") or ()),
            )
        except (TypeError, ValueError, OverflowError):
            return cls()

    def flaps(self, now: float, thresholds: Thresholds) -> int:
        """How often it went down inside the flap window (one passing check resets nothing)."""
        return sum(1 for t in self.downs if t > now - thresholds.flap_window_seconds)

    def in_grace(self, now: float, thresholds: Thresholds) -> bool:
        """Inside the grace after a recovery (a clock stepped back never extends it)."""
        grace = thresholds.grace_seconds
        return grace > 0 and self.grace_until - grace <= now < self.grace_until


def _time(value: object) -> float:
    """A stored time; anything a timestamp cannot be (NaN, 1e300, a string) reads as 0."""
    return float(value) if is_timestamp(value) else 0.0  # type: ignore[arg-type]


def _alert(value: object) -> dict[str, Any] | None:
    """A stored alert, only if it has the shape ``alerts.plan`` writes."""
    if not isinstance(value, dict):
        return None
    labels = value.get("labels")
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        return None
    if not _time(value.get("starts_at")):
        return None
    sent = value.get("sent_at")
    return {**value, "sent_at": _time(sent) if sent is not None else None}


@dataclass(frozen=True)
class Transition:
    component: str
    before: LifeState
    after: LifeState
    reason: str


def observe(
    life: Life, healthy: bool, failure_type: str | None, now: float, thresholds: Thresholds
) -> Life:
    """Count one probe. Healthy probes end an incident once there are enough of them in a
    row; an unhealthy probe inside the grace after a recovery is no new failure."""
    if healthy:
        successes = life.successes + 1
        done = successes >= thresholds.successes_before_healthy
        return replace(
            life,
            failures=0,
            successes=0 if done else successes,
            failure_type=None if done else life.failure_type,
        )
    in_grace = life.in_grace(now, thresholds)
    went_down = life.state is LifeState.HEALTHY and not in_grace
    window_start = now - thresholds.flap_window_seconds
    downs = tuple(t for t in life.downs if t > window_start) + ((now,) if went_down else ())
    return replace(
        life,
        successes=0,
        failures=life.failures if in_grace else life.failures + 1,
        downs=downs,
        failure_type=failure_type or life.failure_type,
    )


def settled_state(life: Life, healthy: bool, thresholds: Thresholds) -> LifeState | None:
    """The state a probe alone puts the component in, before any gate looks (``None``:
    it stays as it is)."""
    if healthy:
        if life.state is LifeState.HEALTHY or life.successes:
            return None
        return LifeState.HEALTHY
    if life.state is LifeState.HEALTHY:
        return LifeState.FAILING
    return None


def move(
    life: Life, name: str, state: LifeState, reason: str, now: float
) -> tuple[Life, Transition | None]:
    """``life`` in ``state``; the transition to record, if the state or its reason changed."""
    if life.state is state and life.reason == reason:
        return life, None
    moved = replace(
        life, state=state, reason=reason, since=now if life.state is not state else life.since
    )
    return moved, Transition(name, life.state, state, reason)
