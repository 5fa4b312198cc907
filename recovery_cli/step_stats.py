"""What ``history --stats`` counts: step records tallied by every field its filters and rows
look at, so that tallies of different days can be kept, added up and filtered afterwards with
the same result as filtering and counting the records themselves.

Durations are added up exactly (as integers, in units of the smallest float), so the mean is
the same whatever the order or grouping in which the records were counted."""

from __future__ import annotations

import math
from collections import defaultdict
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


def mean_seconds(units: int, runs: int) -> float:
    """The mean of ``runs`` durations that add up to ``units``, correctly rounded."""
    return units / (runs << UNIT_BITS)


@dataclass
class StepTally:
    """Per key: [runs, total duration in units]."""

    counts: dict[StepKey, list[int]] = field(default_factory=dict)

    def add_all(self, records: Iterable[Record]) -> StepTally:
        counts, units_of = self.counts, dict[object, int]()
        for record in records:
            key = step_key(record)
            seconds = record.get("duration_s")
            try:  # equal values (1, 1.0, true) are the same number of seconds
                units = units_of[seconds]
            except KeyError:
                units = units_of[seconds] = duration_units(seconds)
            except TypeError:  # a list or an object: not a number
                units = 0
            bucket = counts.get(key)
            if bucket is None:
                counts[key] = [1, units]
            else:
                bucket[0] += 1
                bucket[1] += units
        return self

    def merge(self, other: StepTally) -> StepTally:
        for key, (runs, units) in other.counts.items():
            self.add_counts(key, runs, units)
        return self

    def add_counts(self, key: StepKey, runs: int, units: int) -> None:
        bucket = self.counts.setdefault(key, [0, 0])
        bucket[0] += runs
        bucket[1] += units

    def grouped(self, q: HistoryQuery) -> list[tuple[str, str, str, int, int, int]]:
        """(component, strategy, failure type, runs, successes, duration units) of the steps
        ``q`` selects, sorted: the rows of ``history --stats``."""
        if q.events and Event.STEP not in q.events:
            return []
        rows: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        for key, (runs, units) in self.counts.items():
            if selected(key, q):
                component, _, strategy, missing, failure, outcome = key
                row = rows[(component, "None" if missing else strategy, failure)]
                row[0] += runs
                row[1] += runs if outcome == SUCCESS else 0
                row[2] += units
        return [(*name, runs, ok, units) for name, (runs, ok, units) in sorted(rows.items())]

    def to_json(self) -> list[list[Any]]:
        return [[*key, runs, units] for key, (runs, units) in self.counts.items()]

    @classmethod
    def from_json(cls, data: object) -> StepTally | None:
        """The tally ``to_json`` wrote; None for anything of another shape."""
        if not isinstance(data, list):
            return None
        tally = cls()
        for entry in data:
            if not _is_entry(entry):
                return None
            *key, runs, units = entry
            tally.add_counts(cast(StepKey, tuple(key)), runs, units)
        return tally


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
    if not isinstance(entry, list) or len(entry) != len(KEY_TYPES) + 2:
        return False
    typed = all(type(v) in kinds for v, kinds in zip(entry, KEY_TYPES, strict=False))
    runs, units = entry[-2:]
    return typed and type(runs) is int and runs > 0 and type(units) is int
