"""Running totals of what the audit trail records, for the metrics' counters.

The totals of day files pruned so far are kept in the state file (added before a file is
deleted), so a counter is always pruned totals + what the trail holds now: it never
decreases, and concurrent runs cannot overwrite each other's counts. An incident is counted
at its start (``outcomes``); one still open when its day files are pruned keeps its start
in the totals, so its time to recover is observed when the newer records end it."""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from recovery_cli.audit import Event, Record, parse_ts_or
from recovery_cli.outcomes import Change, Incident, IncidentWalk, change_of

# seconds a recovery attempt takes: from a reconnect to a slow restart
DURATION_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
RECOVERED = frozenset({"success", "recovered_with_loss"})
ENDED = RECOVERED | {"failed", "awaiting_approval", "interrupted"}
# seconds from the first failing probe to the first healthy one: a reconnect to a day
RECOVER_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)
SEPARATOR = "\t"
HISTOGRAMS = {"durations": DURATION_BUCKETS, "recover_times": RECOVER_BUCKETS}
Key = tuple[str, ...]  # label values, in the metric's label order


@dataclass
class Tally:
    attempts: dict[Key, float] = field(default_factory=lambda: defaultdict(float))
    blocked: dict[Key, float] = field(default_factory=lambda: defaultdict(float))
    overrides: dict[Key, float] = field(default_factory=lambda: defaultdict(float))
    # per component: one count per bucket (the last is +Inf), then the sum
    durations: dict[Key, list[float]] = field(default_factory=dict)
    last_success: dict[Key, float] = field(default_factory=dict)
    incidents: dict[Key, float] = field(default_factory=lambda: defaultdict(float))
    recover_times: dict[Key, list[float]] = field(default_factory=dict)  # as ``durations``
    # per component: the start of the incident open at the end of these records, and the
    # end of one begun before them (the two meet when older totals are added to newer ones)
    open_since: dict[Key, float] = field(default_factory=dict)
    unseen_end: dict[Key, float] = field(default_factory=dict)

    def observe(self, component: str, seconds: float) -> None:
        _observe(self.durations, DURATION_BUCKETS, component, seconds)

    def recovered(self, incident: Incident) -> None:
        if incident.seconds is not None:
            _observe(self.recover_times, RECOVER_BUCKETS, incident.component, incident.seconds)

    def add(self, other: Tally) -> Tally:
        """``other``, counted from records newer than these, added."""
        self._join(other)  # first: it asks what these records held before
        for mine, theirs in (
            (self.attempts, other.attempts),
            (self.blocked, other.blocked),
            (self.overrides, other.overrides),
            (self.incidents, other.incidents),
        ):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0.0) + value
        for own_table, their_table in (
            (self.durations, other.durations),
            (self.recover_times, other.recover_times),
        ):
            for key, counts in their_table.items():
                own = own_table.setdefault(key, [0.0] * len(counts))
                own_table[key] = [a + b for a, b in zip(own, counts, strict=True)]
        for key, when in other.last_success.items():
            self.last_success[key] = max(when, self.last_success.get(key, 0.0))
        return self

    def _join(self, other: Tally) -> None:
        """An incident open at the end of these records and ended in ``other``."""
        for key, ended in other.unseen_end.items():
            started = self.open_since.pop(key, None)
            if started is not None:
                self.recovered(Incident(key[0], "", started, max(started, ended)))
            elif not any(k[0] == key[0] for k in self.incidents):
                self.unseen_end.setdefault(key, ended)
        self.open_since.update(other.open_since)

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
            "incidents": self.incidents,
            "recover_times": self.recover_times,
            "open_since": self.open_since,
            "unseen_end": self.unseen_end,
        }


def _observe(
    table: dict[Key, list[float]], buckets: tuple[float, ...], component: str, seconds: float
) -> None:
    counts = table.setdefault((component,), [0.0] * (len(buckets) + 2))
    counts[bisect.bisect_left(buckets, seconds)] += 1
    counts[-1] += seconds


def _stored_value(table: str, value: object) -> bool:
    """Only totals of the shape ``to_json`` writes are added back."""
    buckets = HISTOGRAMS.get(table)
    if buckets is not None:
        return (
            isinstance(value, list)
            and len(value) == len(buckets) + 2
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
    changes: list[Change] = []
    for record in records:
        event, component = record.get("event"), str(record.get("component"))
        if event == Event.STATE_CHANGED and (change := change_of(record)) is not None:
            changes.append(change)
        elif event == Event.STEP:
            strategies[str(record.get("attempt_id"))] = str(record.get("strategy"))
        elif event == Event.ATTEMPT:
            _attempt(counted, record, component, strategies)
        elif event == Event.BLOCKED:
            counted.blocked[(component, str(record.get("reason")))] += 1
    return counted.add(incident_tally(changes))


def incident_tally(changes: Iterable[Change]) -> Tally:
    """The incidents of these lifecycle changes, oldest first, counted as ``tally`` does."""
    counted, walk = Tally(), IncidentWalk()
    for change in changes:
        _change(counted, walk, change)
    counted.open_since = {(name,): i.started for name, i in walk.still_open().items()}
    return counted


def _change(counted: Tally, walk: IncidentWalk, change: Change) -> None:
    started, ended, unseen_end = walk.step(change)
    if started is not None:
        counted.incidents[(started.component, started.failure_type)] += 1
    if ended is not None:
        counted.recovered(ended)
    if unseen_end is not None:
        counted.unseen_end.setdefault((change.component,), unseen_end)


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
