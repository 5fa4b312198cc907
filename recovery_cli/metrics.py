"""``recovery metrics``: Prometheus metrics computed from the audit trail and state.

Counters are derived from durable records on every run, so twenty concurrent runs cannot
overwrite each other's counts the way pushed per-run counters would."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recovery_cli import approvals
from recovery_cli.audit import parse_ts_or
from recovery_cli.config import Config
from recovery_cli.errors import StateError
from recovery_cli.store import Store

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


def build_registry(config: Config, store: Store) -> CollectorRegistry:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    # Counters here are rebuilt from the audit trail on each run: a creation time means nothing.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    attempts = Counter(
        "infra_recovery_attempts",
        "Finished recovery attempts",
        ["component", "strategy", "outcome"],
        registry=registry,
    )
    duration = Histogram(
        "infra_recovery_duration_seconds",
        "Duration of finished recovery attempts",
        ["component"],
        registry=registry,
    )
    blocked = Counter(
        "infra_recovery_blocked",
        "Recoveries refused by a gate",
        ["component", "reason"],
        registry=registry,
    )
    last_success = Gauge(
        "infra_recovery_last_success_timestamp_seconds",
        "Last successful recovery",
        ["component"],
        registry=registry,
    )
    _count_records(store, attempts, duration, blocked, last_success)
    _state_gauges(config, store, registry)
    return registry


def _count_records(
    store: Store, attempts: Any, duration: Any, blocked: Any, last_success: Any
) -> None:
    strategies: dict[str, str] = {}  # attempt_id -> the last step's strategy
    for record in store.audit.read_forward():
        event, component = record.get("event"), str(record.get("component"))
        if event == "step":
            strategies[str(record.get("attempt_id"))] = str(record.get("strategy"))
        elif event == "attempt" and record.get("outcome") in (
            "success",
            "failed",
            "awaiting_approval",
        ):
            strategy = strategies.pop(str(record.get("attempt_id")), "-")
            attempts.labels(component, strategy, record["outcome"]).inc()
            duration.labels(component).observe(float(record.get("duration_s") or 0))
            if record["outcome"] == "success":
                when = parse_ts_or(record["ts"], 0.0)
                if when:
                    last_success.labels(component).set(when)
        elif event == "blocked":
            blocked.labels(component, str(record.get("reason"))).inc()


def _state_gauges(config: Config, store: Store, registry: CollectorRegistry) -> None:
    from prometheus_client import Gauge

    state = store.load_state()
    now = store.now()
    cooldown = Gauge(
        "infra_recovery_cooldown_active",
        "1 while the component cools down",
        ["component"],
        registry=registry,
    )
    for name in config.components:
        window = store.window(name, config.hourly_cap(name), config.cooldown(name))
        cooldown.labels(name).set(1 if window.cooldown_until else 0)
    degraded = Gauge(
        "infra_degraded_mode_active",
        "1 while the degraded mode is active",
        ["mode"],
        registry=registry,
    )
    for mode in config.degraded_modes:
        degraded.labels(mode).set(1 if mode in state.degraded else 0)
    Gauge(
        "infra_recovery_pending_approvals", "Approvals waiting for a human", registry=registry
    ).set(len(approvals.pending(state, now)))
    last_run = Gauge(
        "infra_recovery_last_run_timestamp_seconds", "Last recover run", registry=registry
    )
    if state.last_run:
        last_run.set(state.last_run)
    Gauge(
        "infra_recovery_audit_corrupt_lines_total",
        "Audit lines skipped as torn or invalid",
        registry=registry,
    ).set(store.audit.stats.corrupt_lines)


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


def write_atomically(path: Path, text: str) -> None:
    """For node_exporter's textfile collector: it never sees a half-written file."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise StateError(f"cannot write metrics to {path}: {exc.strerror}") from exc
