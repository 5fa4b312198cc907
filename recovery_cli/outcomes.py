"""Outcome analytics of the audit trail: each component's incidents, time to recover and
uptime over a window (from its recorded lifecycle changes, ``state_changed``), and the
quantiles the statistics rows use.

Everything here is pure: the same changes, window and ``now`` give the same numbers.

An incident starts at the first change of a component from ``healthy`` into a state other
than ``recovering`` (the first probe, or the end of a run, that found it unhealthy: a run on a
healthy component, ``--force`` or a follow-up, is no incident while it works) and ends at its
next change into ``healthy``. Its time to recover is the time between the two."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from recovery_cli.audit import Event, Record, is_timestamp, parse_ts_or

HEALTHY = "healthy"
RECOVERING = "recovering"
UNKNOWN_FAILURE = "-"


@dataclass(frozen=True)
class Change:
    """One recorded change of a component's lifecycle state."""

    ts: str
    at: float
    component: str
    before: str
    after: str
    failure_type: str | None = None

    def to_json(self) -> list[Any]:
        return [self.ts, self.component, self.before, self.after, self.failure_type]

    @classmethod
    def from_json(cls, data: object) -> Change | None:
        """The change ``to_json`` wrote; None for anything of another shape."""
        if not isinstance(data, list) or len(data) != 5:
            return None
        ts, component, before, after, failure = data
        if not all(type(v) is str for v in (ts, component, before, after)):
            return None
        if failure is not None and type(failure) is not str:
            return None
        return _change(ts, component, before, after, failure)


def change_of(record: Record) -> Change | None:
    """The lifecycle change a ``state_changed`` record holds; None for any other record."""
    if record.get("event") != Event.STATE_CHANGED:
        return None
    ts, component = record.get("ts"), record.get("component")
    before, after = record.get("from_state"), record.get("to_state")
    if not (
        isinstance(ts, str)
        and isinstance(component, str)
        and isinstance(before, str)
        and isinstance(after, str)
    ):
        return None
    failure = record.get("failure_type")
    return _change(ts, component, before, after, failure if isinstance(failure, str) else None)


def _change(ts: str, component: str, before: str, after: str, failure: str | None) -> Change | None:
    at = parse_ts_or(ts, math.nan)
    return Change(ts, at, component, before, after, failure or None) if is_timestamp(at) else None


@dataclass(frozen=True)
class Incident:
    component: str
    failure_type: str
    started: float
    recovered: float | None = None  # None: not healthy again (yet)

    @property
    def seconds(self) -> float | None:
        return None if self.recovered is None else self.recovered - self.started


@dataclass
class _Stretch:
    """A component's time out of ``healthy`` as the walk has seen it."""

    started: float | None = None
    failure_type: str = UNKNOWN_FAILURE
    unseen_start: bool = False  # the walk began inside it: its start is not in these changes


@dataclass
class IncidentWalk:
    """Incidents found as the changes come, oldest first, per component."""

    stretches: dict[str, _Stretch] = field(default_factory=dict)

    def step(self, change: Change) -> tuple[Incident | None, Incident | None, float | None]:
        """(the incident this change starts, the one it ends, when an incident begun before
        these changes ended)."""
        stretch = self.stretches.get(change.component)
        if stretch is None:
            stretch = _Stretch(unseen_start=change.before != HEALTHY)
            self.stretches[change.component] = stretch
        if change.after == HEALTHY:
            return None, *self._end(change, stretch)
        if stretch.started is None and not stretch.unseen_start and change.after != RECOVERING:
            stretch.started = change.at
            stretch.failure_type = change.failure_type or UNKNOWN_FAILURE
            return Incident(change.component, stretch.failure_type, change.at), None, None
        return None, None, None

    def _end(self, change: Change, stretch: _Stretch) -> tuple[Incident | None, float | None]:
        started, unseen = stretch.started, stretch.unseen_start
        self.stretches[change.component] = _Stretch()
        if started is not None:  # a clock stepped back ends it no earlier than it began
            ended = max(started, change.at)
            return Incident(change.component, stretch.failure_type, started, ended), None
        return None, change.at if unseen else None

    def still_open(self) -> dict[str, Incident]:
        return {
            name: Incident(name, s.failure_type, s.started)
            for name, s in self.stretches.items()
            if s.started is not None
        }


def incidents(changes: Iterable[Change]) -> list[Incident]:
    """Every incident the changes start, in order, with its end where they hold it."""
    walk, found = IncidentWalk(), dict[tuple[str, float], Incident]()
    for change in changes:
        started, ended, _ = walk.step(change)
        for incident in (started, ended):
            if incident is not None:
                found[(incident.component, incident.started)] = incident
    return list(found.values())


@dataclass(frozen=True)
class ComponentOutcome:
    component: str
    incidents: int  # started inside the window
    recovered: int  # of those, healthy again by the window's end
    open: int
    by_failure_type: dict[str, int]
    mttr_s: float | None  # the mean time to recover of the recovered ones
    median_ttr_s: float | None
    p90_ttr_s: float | None
    uptime_pct: float | None  # time in healthy over time observed
    healthy_s: float
    observed_s: float

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "by_failure_type": dict(self.by_failure_type)}


def component_outcomes(
    changes: Sequence[Change],
    start: float,
    end: float,
    states: Mapping[str, str],
    components: Sequence[str] = (),
) -> list[ComponentOutcome]:
    """Each component's outcome over ``start`` to ``end``. ``changes``: every change from
    ``start`` on (later ones too), oldest first; ``states``: each component's state now, its
    state through the window when no change from ``start`` on says otherwise."""
    later = [c for c in changes if c.at >= start]
    names = sorted({c.component for c in later if c.at <= end} | set(states))
    own: dict[str, list[Change]] = {}
    for change in later:
        own.setdefault(change.component, []).append(change)
    found: dict[str, list[Incident]] = {}
    for incident in incidents(later):
        found.setdefault(incident.component, []).append(incident)
    return [
        _outcome(name, own.get(name, []), found.get(name, []), start, end, states)
        for name in names
        if not components or name in components
    ]


def _outcome(
    name: str,
    own: list[Change],
    found: list[Incident],
    start: float,
    end: float,
    states: Mapping[str, str],
) -> ComponentOutcome:
    inside = [i for i in found if start <= i.started <= end]
    times = [s for i in inside if (s := i.seconds) is not None and i.started + s <= end]
    by_type: dict[str, int] = {}
    for incident in inside:
        by_type[incident.failure_type] = by_type.get(incident.failure_type, 0) + 1
    healthy, observed = healthy_seconds(own, start, end, states.get(name, HEALTHY))
    return ComponentOutcome(
        name,
        len(inside),
        len(times),
        len(inside) - len(times),
        dict(sorted(by_type.items())),
        _rounded(sum(times) / len(times)) if times else None,
        _rounded(quantile(times, 0.5)) if times else None,
        _rounded(quantile(times, 0.9)) if times else None,
        round(100 * healthy / observed, 3) if observed > 0 else None,
        _rounded(healthy),
        _rounded(observed),
    )


def healthy_seconds(
    own: Sequence[Change], start: float, end: float, now: str
) -> tuple[float, float]:
    """(seconds in healthy, seconds observed) from ``start`` to ``end``: the state before
    the first change from ``start`` on held since ``start`` (``now`` with no change)."""
    observed = max(0.0, end - start)
    state = own[0].before if own else now
    healthy, since = 0.0, start
    for change in own:
        if change.at > end:
            break
        at = max(since, change.at)  # a clock stepped back: no time runs backwards
        if state == HEALTHY:
            healthy += at - since
        state, since = change.after, at
    if state == HEALTHY:
        healthy += max(0.0, end - since)
    return min(healthy, observed), observed


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile by linear interpolation between the closest ranks (the median is
    the middle value, or the mean of the two middle ones)."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def weighted_median(counts: Mapping[float, int]) -> float:
    """The median of values given as value -> how many times it occurs."""
    total = sum(counts.values())
    ordered = sorted(counts.items())
    middle = [(total - 1) // 2, total // 2]
    picked, seen = [], 0
    for value, count in ordered:
        while middle and middle[0] < seen + count:
            picked.append(value)
            middle.pop(0)
        seen += count
    return (picked[0] + picked[1]) / 2 if picked else 0.0


def _rounded(seconds: float) -> float:
    return round(seconds, 3)
