"""``recovery metrics``: Prometheus metrics from the audit trail and the state file.

Counters are the running totals of pruned day files (kept in the state file) plus what the
trail holds now (``counters``): they never decrease across pruning, and twenty concurrent runs
cannot overwrite each other's counts the way pushed per-run counters would. Gauges come from
the state: lifecycle state, cooldowns, degraded modes, approvals, the last run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recovery_cli import approvals
from recovery_cli.alerts import ON_FALLBACK
from recovery_cli.config import Config
from recovery_cli.counters import DURATION_BUCKETS, RECOVER_BUCKETS, Key, Tally, tally
from recovery_cli.errors import StateError, UsageError
from recovery_cli.lifecycle import Life, LifeState
from recovery_cli.state_file import State
from recovery_cli.store import Store

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric


def build_registry(config: Config, store: Store) -> CollectorRegistry:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    state = store.load_state()
    aggregates = store.aggregates()
    counted = aggregates.tally() if aggregates is not None else tally(store.audit.read_forward())
    totals = Tally.from_json(state.counters).add(counted)
    registry.register(_Snapshot(list(_families(config, store, state, totals))))
    return registry


class _Snapshot:
    """A collector over metric families computed once."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _families(config: Config, store: Store, state: State, totals: Tally) -> Iterator[Metric]:
    yield from _counters(totals)
    yield from _lifecycle(config, state)
    yield from _gauges(config, store, state)


def _counters(totals: Tally) -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    yield _counter(
        "infra_recovery_attempts",
        "Finished recovery attempts",
        ["component", "strategy", "outcome"],
        totals.attempts,
    )
    yield _counter(
        "infra_recovery_blocked",
        "Recoveries refused by a gate",
        ["component", "reason"],
        totals.blocked,
    )
    yield _counter(
        "infra_recovery_overrides",
        "Break-glass runs past the cap or cooldown (--override-limits)",
        ["component"],
        totals.overrides,
    )
    yield _counter(
        "infra_recovery_incidents",
        "Incidents: a component left healthy (its first failing probe)",
        ["component", "failure_type"],
        totals.incidents,
    )
    yield _histogram(
        "infra_recovery_duration_seconds",
        "Duration of finished recovery attempts",
        totals.durations,
        DURATION_BUCKETS,
    )
    yield _histogram(
        "infra_recovery_time_to_recover_seconds",
        "Time from an incident's first failing probe to its first healthy one",
        totals.recover_times,
        RECOVER_BUCKETS,
    )
    last = GaugeMetricFamily(
        "infra_recovery_last_success_timestamp_seconds",
        "Last successful recovery",
        labels=["component"],
    )
    for key, when in sorted(totals.last_success.items()):
        last.add_metric(list(key), when)
    yield last


def _counter(name: str, text: str, labels: list[str], table: dict[Key, float]) -> Metric:
    from prometheus_client.core import CounterMetricFamily

    family = CounterMetricFamily(name, text, labels=labels)
    for key, value in sorted(table.items()):
        family.add_metric(list(key), value)
    return family


def _histogram(
    name: str, text: str, table: dict[Key, list[float]], bounds: tuple[float, ...]
) -> Metric:
    from prometheus_client.core import HistogramMetricFamily

    family = HistogramMetricFamily(name, text, labels=["component"])
    for key, counts in sorted(table.items()):
        family.add_metric(list(key), _buckets(counts, bounds), sum_value=counts[-1])
    return family


def _buckets(counts: list[float], bounds: tuple[float, ...]) -> list[tuple[str, float]]:
    cumulative, out = 0.0, []
    for bound, count in zip((*bounds, float("inf")), counts[:-1], strict=True):
        cumulative += count
        out.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
    return out


def _lifecycle(config: Config, state: State) -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily, StateSetMetricFamily

    up = GaugeMetricFamily(
        "infra_recovery_component_up",
        "1 while the component is healthy, 0 otherwise",
        labels=["component"],
    )
    states = StateSetMetricFamily(
        "infra_recovery_component_state",
        "The component's lifecycle state",
        labels=["component"],
    )
    fallback = GaugeMetricFamily(
        "infra_recovery_component_on_fallback",
        "1 while the component works from its fallback (after a failover), 0 otherwise",
        labels=["component"],
    )
    for name in config.components:
        life = Life.from_json(state.components.get(name))
        up.add_metric([name], 1 if life.state is LifeState.HEALTHY else 0)
        states.add_metric([name], {s.value: s is life.state for s in LifeState})
        fallback.add_metric([name], 1 if ON_FALLBACK in life.marks else 0)
    yield up
    yield states
    yield fallback


def _gauges(config: Config, store: Store, state: State) -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    now = store.now()
    cooldown = GaugeMetricFamily(
        "infra_recovery_cooldown_active", "1 while the component cools down", labels=["component"]
    )
    for name in config.components:
        window = store.window(name, config.hourly_cap(name), config.cooldown(name))
        cooldown.add_metric([name], 1 if window.cooldown_until else 0)
    yield cooldown
    degraded = GaugeMetricFamily(
        "infra_degraded_mode_active", "1 while the degraded mode is active", labels=["mode"]
    )
    for mode in config.degraded_modes:
        degraded.add_metric([mode], 1 if mode in state.degraded else 0)
    yield degraded
    yield GaugeMetricFamily(
        "infra_recovery_pending_approvals",
        "Approvals waiting for a human",
        value=len(approvals.pending(state, now)),
    )
    last_run = GaugeMetricFamily("infra_recovery_last_run_timestamp_seconds", "Last recover run")
    if state.last_run:
        last_run.add_metric([], state.last_run)
    yield last_run
    yield GaugeMetricFamily(
        "infra_recovery_audit_corrupt_lines",
        "Audit lines skipped as torn or invalid",
        value=store.audit.stats.corrupt_lines,
    )
    backend = GaugeMetricFamily(
        "infra_recovery_backend_up",
        "1 while the state backend answers (postgres; file is always 1), 0 while this host "
        "works on its local state dir",
        labels=["backend"],
    )
    backend.add_metric([store.backend_name()], 1.0 if store.backend_up() else 0.0)
    yield backend


def exposition(registry: CollectorRegistry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()


def as_json(registry: CollectorRegistry) -> list[dict[str, Any]]:
    rows = []
    for family in registry.collect():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            rows.append({"name": sample.name, "labels": dict(sample.labels), "value": sample.value})
    return rows


def write_atomically(path: Path, text: str, state_dir: Path) -> None:
    """For node_exporter's textfile collector: it never sees a half-written file. Only a
    regular file (or a new one) in an existing directory outside the state dir is written:
    never a device, a symlink, a directory or one of the tool's own files."""
    _check_target(path, state_dir)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise StateError(f"cannot write metrics to {path}: {exc.strerror}") from exc


def _check_target(path: Path, state_dir: Path) -> None:
    import stat

    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"--output: directory {parent} does not exist")
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise UsageError(f"--output: {path} exists and is not a regular file; refusing it")
    inside = Path(os.path.realpath(parent))
    home = Path(os.path.realpath(state_dir))
    if inside == home or home in inside.parents:
        raise UsageError(f"--output: {path} is inside the state dir; write it elsewhere")
