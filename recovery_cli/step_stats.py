"""What ``history --stats`` counts: step records tallied by every field its filters and rows
look at, so that tallies of different days can be kept, added up and filtered afterwards with
the same result as filtering and counting the records themselves.

Durations are added up exactly (as integers, in units of the smallest float), so the mean is
the same whatever the order or grouping in which the records were counted; each key also keeps
how often each duration occurred, for the median."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from recovery_cli.audit import Event, Record

if TYPE_CHECKING:
    from recovery_cli.history import HistoryQuery

# (component as shown, whether it was text: only text matches --component;
#  strategy as text, what --strategy splits at commas; whether the record had none;
#  failure type as shown; outcome if text: only text matches --outcome)
StepKey = tuple[str, bool, str, bool, str, str | None]
KEY_TYPES: tuple[tuple[type, ...], ...] = (
    (str,),
    (bool,),
    (str,),
    (bool,),
    (str,),
    (str, type(None)),
)
UNIT_BITS = 1074  # a float is a whole number of 2**-1074, the smallest one above zero
SUCCESS = "success"


def step_key(record: Record) -> StepKey:
    component, outcome = record.get("component"), record.get("outcome")
    return (
        str(component),
        isinstance(component, str),
        str(record.get("strategy", "")),
        "strategy" not in record,
        str(record.get("failure_type") or "-"),
        outcome if isinstance(outcome, str) else None,
    )


def duration_units(value: object) -> int:
    """A duration in exact units of 2**-1074 s; 0 when missing or not a finite number."""
    try:
        seconds = float(value or 0)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return 0
    if not math.isfinite(seconds):
        return 0
    numerator, denominator = seconds.as_integer_ratio()  # denominator: a power of two
    return numerator << (UNIT_BITS + 1 - denominator.bit_length())


def duration_seconds(value: object) -> float:
    """A duration as the median counts it: 0 when missing or not a finite number."""
    try:
        seconds = float(value or 0)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return seconds if math.isfinite(seconds) else 0.0


def mean_seconds(units: int, runs: int) -> float:
    """The mean of ``runs`` durations that add up to ``units``, correctly rounded."""
    return units / (runs << UNIT_BITS)


@dataclass
class StepTally:
    """Per key: [runs, total duration in units], and how often each duration occurred."""

    counts: dict[StepKey, list[int]] = field(default_factory=dict)
    spread: dict[StepKey, dict[float, int]] = field(default_factory=dict)

    def add_all(self, records: Iterable[Record]) -> StepTally:
        counts, spread, units_of = self.counts, self.spread, dict[object, tuple[int, float]]()
        for record in records:
            key = step_key(record)
            seconds = record.get("duration_s")
            try:  # equal values (1, 1.0, true) are the same number of seconds
                units, value = units_of[seconds]
            except KeyError:
                units, value = units_of[seconds] = (
                    duration_units(seconds),
                    duration_seconds(seconds),
                )
            except TypeError:  # a list or an object: not a number
                units, value = 0, 0.0
            bucket = counts.get(key)
            if bucket is None:
                counts[key] = [1, units]
                spread[key] = {value: 1}
            else:
                bucket[0] += 1
                bucket[1] += units
                values = spread[key]
                values[value] = values.get(value, 0) + 1
        return self

    def merge(self, other: StepTally) -> StepTally:
        for key, (runs, units) in other.counts.items():
            self.add_counts(key, runs, units, other.spread.get(key, {}))
        return self

    def add_counts(self, key: StepKey, runs: int, units: int, durations: dict[float, int]) -> None:
        bucket = self.counts.setdefault(key, [0, 0])
        bucket[0] += runs
        bucket[1] += units
        values = self.spread.setdefault(key, {})
        for value, count in durations.items():
            values[value] = values.get(value, 0) + count

    def grouped(self, q: HistoryQuery) -> list[StepGroup]:
        """The steps ``q`` selects per (component, strategy, failure type), sorted: the rows
        of ``history --stats``."""
        if q.events and Event.STEP not in q.events:
            return []
        rows: dict[tuple[str, str, str], StepGroup] = {}
        for key, (runs, units) in self.counts.items():
            if selected(key, q):
                component, _, strategy, missing, failure, outcome = key
                name = (component, "None" if missing else strategy, failure)
                group = rows.get(name)
                if group is None:
                    group = rows[name] = StepGroup(*name)
                group.add(runs, runs if outcome == SUCCESS else 0, units, self.spread.get(key, {}))
        return [rows[name] for name in sorted(rows)]

    def to_json(self) -> list[list[Any]]:
        return [
            [*key, runs, units, sorted([v, n] for v, n in self.spread.get(key, {}).items())]
            for key, (runs, units) in self.counts.items()
        ]

    @classmethod
    def from_json(cls, data: object) -> StepTally | None:
        """The tally ``to_json`` wrote; None for anything of another shape."""
        if not isinstance(data, list):
            return None
        tally = cls()
        for entry in data:
            if not _is_entry(entry):
                return None
            *key, runs, units, durations = entry
            spread = {float(value): count for value, count in durations}
            tally.add_counts(cast(StepKey, tuple(key)), runs, units, spread)
        return tally


@dataclass
class StepGroup:
    """One row's steps: runs, successes, duration units, and how often each duration was."""

    component: str
    strategy: str
    failure_type: str
    runs: int = 0
    successes: int = 0
    units: int = 0
    durations: dict[float, int] = field(default_factory=dict)

    def add(self, runs: int, successes: int, units: int, durations: dict[float, int]) -> None:
        self.runs += runs
        self.successes += successes
        self.units += units
        for value, count in durations.items():
            self.durations[value] = self.durations.get(value, 0) + count


def selected(key: StepKey, q: HistoryQuery) -> bool:
    """Whether records of this key pass ``q``'s filters (as ``history._matches`` decides)."""
    component, component_is_text, strategy, _, _, outcome = key
    if q.components and not (component_is_text and component in q.components):
        return False
    if q.outcomes and not (outcome is not None and outcome in q.outcomes):
        return False
    named = strategy.split(",")
    return not q.strategies or any(s in named for s in q.strategies)


def _is_entry(entry: object) -> bool:
    if not isinstance(entry, list) or len(entry) != len(KEY_TYPES) + 3:
        return False
    typed = all(type(v) in kinds for v, kinds in zip(entry, KEY_TYPES, strict=False))
    runs, units, durations = entry[-3:]
    return (
        typed
        and type(runs) is int
        and runs > 0
        and type(units) is int
        and _is_spread(durations, runs)
    )


def _is_spread(durations: object, runs: int) -> bool:
    """``[[seconds, count], ...]``: finite seconds, each once, counts adding up to ``runs``."""
    if not isinstance(durations, list) or not all(
        isinstance(p, list)
        and len(p) == 2
        and type(p[0]) in (int, float)
        and math.isfinite(p[0])
        and type(p[1]) is int
        and p[1] > 0
        for p in durations
    ):
        return False
    return len({p[0] for p in durations}) == len(durations) and sum(p[1] for p in durations) == runs
