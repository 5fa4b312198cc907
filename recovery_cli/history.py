"""``recovery history``: audit records newest first, filtered; success-rate statistics; and
each component's incidents, time to recover and uptime (``outcomes``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from recovery_cli.audit import Event, Record, parse_ts_or
from recovery_cli.errors import UsageError
from recovery_cli.handlers.util import format_ts
from recovery_cli.lifecycle import Life
from recovery_cli.outcomes import ComponentOutcome, component_outcomes, weighted_median
from recovery_cli.step_stats import StepGroup, StepTally, mean_seconds
from recovery_cli.store import Store
from recovery_cli.success_rate import wilson

DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION_SECONDS = 3650 * 86400  # 10 years: beyond that a time overflows, not a plan
LATEST_EPOCH = 253_370_764_800  # 9999-01-01T00:00:00Z


@dataclass(frozen=True)
class HistoryQuery:
    """Each filter holds the values any of which a record may match (empty: no filter)."""

    components: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    outcomes: tuple[str, ...] = ()
    strategies: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    limit: int | None = 50


def parse_duration(text: str) -> float:
    """A positive duration of at most ``MAX_DURATION_SECONDS``, e.g. ``30m``, ``24h``, ``7d``."""
    match = DURATION.match(text.strip())
    if not match:
        raise UsageError(f"invalid duration {text!r}: use a number and a unit, e.g. 30m, 24h, 7d")
    seconds = float(match.group(1)) * UNIT_SECONDS[match.group(2)]
    if not 0 < seconds <= MAX_DURATION_SECONDS:
        raise UsageError(f"invalid duration {text!r}: must be above 0 and at most 10 years")
    return seconds


def parse_time(text: str, now: float) -> str:
    """An absolute time (``2026-11-22``, ``2026-11-22T10:00``, RFC 3339) or a duration ago."""
    if DURATION.match(text.strip()):
        return _format_epoch(now - parse_duration(text), text)
    import datetime as dt

    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        epoch = moment.timestamp()
    except (ValueError, OverflowError):
        raise UsageError(
            f"invalid time {text!r}: use 2026-11-22, 2026-11-22T10:00Z or a duration like 24h"
        ) from None
    return _format_epoch(epoch, text)


def _format_epoch(epoch: float, text: str) -> str:
    # audit timestamps compare as text, which holds only for four-digit years from 1970
    if not 0 <= epoch < LATEST_EPOCH:
        raise UsageError(f"time {text!r} is out of range: use a time from 1970 to 9998")
    return format_ts(epoch)


def query(store: Store, q: HistoryQuery) -> list[Record]:
    one = q.components[0] if len(q.components) == 1 else None
    needle = f'"component":"{one}"'.encode() if one else None
    rows = []
    for record in store.audit.read_back(since=q.since, until=q.until, contains=needle):
        if _matches(record, q):
            rows.append(record)
            if q.limit is not None and len(rows) >= q.limit:
                break
    return rows


def _matches(record: Record, q: HistoryQuery) -> bool:
    if q.components and record.get("component") not in q.components:
        return False
    if q.outcomes and record.get("outcome") not in q.outcomes:
        return False
    if q.events and record.get("event") not in q.events:
        return False
    named = str(record.get("strategy", "")).split(",")
    return not (q.strategies and not any(s in named for s in q.strategies))


@dataclass(frozen=True)
class StatsRow:
    component: str
    strategy: str
    failure_type: str
    runs: int
    successes: int
    success_rate: float
    mean_duration_s: float
    # figures that follow from the steps counted above; rows compare by those alone
    rate_low: float = field(default=0.0, compare=False)  # the 95% Wilson interval
    rate_high: float = field(default=1.0, compare=False)
    median_duration_s: float = field(default=0.0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def stats_row(
    component: str, strategy: str, failure: str, runs: int, ok: int, mean: float, median: float
) -> StatsRow:
    interval = wilson(ok, runs)
    return StatsRow(
        component,
        strategy,
        failure,
        runs,
        ok,
        round(ok / runs, 3),
        round(mean, 3),
        round(interval.low, 3),
        round(interval.high, 3),
        round(median, 3),
    )


def stats_of(store: Store, q: HistoryQuery) -> list[StatsRow]:
    """``stats`` of the store's trail: counted by the backend where it can, else from the
    day files, through their summaries where those answer (``day_summaries``)."""
    from recovery_cli.day_summaries import window_steps

    aggregates = store.aggregates()
    if aggregates is not None:
        return aggregates.step_stats(q)
    return rows_of(window_steps(store.audit, q.since, q.until), q)


def stats(records: Iterator[Record], q: HistoryQuery) -> list[StatsRow]:
    """Success rate of steps per (component, strategy, failure type), counted from the
    records themselves (dated from ``q.since``, as ``read_forward`` gives them)."""
    steps = (
        r for r in records if r.get("event") == Event.STEP and not (q.until and r["ts"] > q.until)
    )
    return rows_of(StepTally().add_all(steps), q)


def rows_of(tally: StepTally, q: HistoryQuery) -> list[StatsRow]:
    return [_row(group) for group in tally.grouped(q)]


def _row(group: StepGroup) -> StatsRow:
    mean = mean_seconds(group.units, group.runs)
    return stats_row(
        group.component,
        group.strategy,
        group.failure_type,
        group.runs,
        group.successes,
        mean,
        weighted_median(group.durations),
    )


@dataclass(frozen=True)
class Analytics:
    """What ``history --stats`` shows: the step rows and each component's outcome."""

    rows: list[StatsRow]
    components: list[ComponentOutcome]


def analytics_of(store: Store, q: HistoryQuery) -> Analytics:
    """``stats_of`` and each component's incidents, time to recover and uptime over ``q``'s
    window (up to now at the latest), the day files read once."""
    from recovery_cli.day_summaries import first_ts, window_counts

    aggregates = store.aggregates()
    if aggregates is not None:
        rows, changes = aggregates.step_stats(q), aggregates.changes(q.since)
        first = None if q.since else aggregates.first_ts()
    else:
        counted = window_counts(store.audit, q.since, q.until)
        rows, changes = rows_of(counted.steps, q), counted.changes
        first = None if q.since else first_ts(store.audit)
    now = store.now()
    start = _epoch(q.since or first, now)
    if not q.since and changes:  # a first line misdated or unreadable starts no later
        start = min(start, min(c.at for c in changes))
    end = min(now, _epoch(q.until, now))
    states = {
        name: str(Life.from_json(life).state)
        for name, life in store.load_state().components.items()
    }
    return Analytics(rows, component_outcomes(changes, start, end, states, q.components))


def _epoch(ts: str | None, default: float) -> float:
    return parse_ts_or(ts, default) if ts else default
