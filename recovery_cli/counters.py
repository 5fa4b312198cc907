"""Running totals of what the audit trail records, for the metrics' counters.

The totals of day files pruned so far are kept in the state file (added before a file is
deleted), so a counter is always pruned totals + what the trail holds now: it never
decreases, and concurrent runs cannot overwrite each other's counts."""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from recovery_cli.audit import Event, Record, parse_ts_or

# seconds a recovery attempt takes: from a reconnect to a slow restart
DURATION_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
RECOVERED = frozenset({"success", "recovered_with_loss"})
ENDED = RECOVERED | {"failed", "awaiting_approval", "interrupted"}
SEPARATOR = "\t"
Key = tuple[str, ...]  # label values, in the metric's label order


@dataclass
class Tally:
    attempts: dict[Key, float] = field(default_factory=lambda: defaultdict(float))
    blocked: dict[Key, float] = field(default_factory=lambda: defaultdict(float))
    overrides: dict[Key, float] = field(default_factory=lambda: defaultdict(float))
    # per component: one count per bucket (the last is +Inf), then the sum
    durations: dict[Key, list[float]] = field(default_factory=dict)
    last_success: dict[Key, float] = field(default_factory=dict)

    def observe(self, component: str, seconds: float) -> None:
        counts = self.durations.setdefault((component,), [0.0] * (len(DURATION_BUCKETS) + 2))
        counts[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        counts[-1] += seconds

    def add(self, other: Tally) -> Tally:
        for mine, theirs in (
            (self.attempts, other.attempts),
            (self.blocked, other.blocked),
            (self.overrides, other.overrides),
        ):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0.0) + value
        for key, counts in other.durations.items():
            own = self.durations.setdefault(key, [0.0] * len(counts))
            self.durations[key] = [a + b for a, b in zip(own, counts, strict=True)]
        for key, when in other.last_success.items():
            self.last_success[key] = max(when, self.last_success.get(key, 0.0))
        return self

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {
            name: {SEPARATOR.join(key): value for key, value in table.items()}
            for name, table in self._tables().items()
        }

    @classmethod
    def from_json(cls, data: object) -> Tally:
        tally = cls()
        if not isinstance(data, dict):
            return tally
        for name, table in tally._tables().items():
            stored = data.get(name)
            if isinstance(stored, dict):
                for key, value in stored.items():
                    if _stored_value(name, value):
                        table[tuple(str(key).split(SEPARATOR))] = value
        return tally

    def _tables(self) -> dict[str, dict[Any, Any]]:
        return {
            "attempts": self.attempts,
            "blocked": self.blocked,
            "overrides": self.overrides,
            "durations": self.durations,
            "last_success": self.last_success,
        }


def _stored_value(table: str, value: object) -> bool:
    """Only totals of the shape ``to_json`` writes are added back."""
    if table == "durations":
        return (
            isinstance(value, list)
            and len(value) == len(DURATION_BUCKETS) + 2
            and all(_seconds(v) == v for v in value)
        )
    return _seconds(value) == value


def _seconds(value: object) -> float:
    """A record's duration; what is not a finite, non-negative number counts as 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value) if math.isfinite(value) and value >= 0 else 0.0


def tally(records: Iterable[Record]) -> Tally:
    counted = Tally()
    strategies: dict[str, str] = {}  # attempt_id -> the last step's strategy (older records)
    for record in records:
        event, component = record.get("event"), str(record.get("component"))
        if event == Event.STEP:
            strategies[str(record.get("attempt_id"))] = str(record.get("strategy"))
        elif event == Event.ATTEMPT:
            _attempt(counted, record, component, strategies)
        elif event == Event.BLOCKED:
            counted.blocked[(component, str(record.get("reason")))] += 1
    return counted


def _attempt(counted: Tally, record: Record, component: str, strategies: dict[str, str]) -> None:
    outcome = str(record.get("outcome"))
    if outcome == "started" and record.get("override"):
        counted.overrides[(component,)] += 1
    if outcome not in ENDED:
        return
    step = strategies.pop(str(record.get("attempt_id")), "-")
    strategy = str(record.get("strategy") or step)
    counted.attempts[(component, strategy, outcome)] += 1
    counted.observe(component, _seconds(record.get("duration_s")))
    if outcome in RECOVERED:
        when = parse_ts_or(record.get("ts"), 0.0)
        if when:
            counted.last_success[(component,)] = max(
                when, counted.last_success.get((component,), 0)
            )
