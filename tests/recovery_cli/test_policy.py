"""The gates as pure functions, and the window arithmetic under a moving clock."""

from __future__ import annotations

from pathlib import Path

from recovery_cli.errors import ExitCode
from recovery_cli.handlers.util import format_ts
from recovery_cli.lifecycle import Life, Thresholds
from recovery_cli.policy import BlockReason, Decision, Facts, Request, Window, build_window, decide
from recovery_cli.state_file import DisabledEntry
from tests.support.cli import base_config, command_component
from tests.support.core import make_core

NOW = 1_795_000_000.0


def attempt(ts: float, outcome: str, component: str = "app") -> dict[str, object]:
    return {"ts": format_ts(ts), "event": "attempt", "component": component, "outcome": outcome}


def inputs(window: Window, **overrides: object) -> Facts:
    base: dict[str, object] = {
        "component": "app",
        "mode": "auto",
        "life": Life(failures=1),
        "window": window,
        "thresholds": Thresholds(),
        "disabled": None,
        "dependencies_down": [],
        "lock_held": False,
    }
    base.update(overrides)
    return Facts(**base)  # type: ignore[arg-type]


def evaluate(facts: Facts, request: Request | None = None) -> Decision:
    return decide(facts, request or Request(), facts.window.now)


def test_sliding_window_counts_only_the_last_hour() -> None:
    records = [
        attempt(NOW - 3700, "started"),
        attempt(NOW - 3500, "started"),
        attempt(NOW - 10, "started"),
    ]
    window = build_window(records, "app", cap=3, cooldown=0, now=NOW)
    assert window.used == 2 and not window.cap_reached


def test_cap_frees_when_the_oldest_counted_attempt_leaves() -> None:
    records = [
        attempt(NOW - 3000, "started"),
        attempt(NOW - 2000, "started"),
        attempt(NOW - 1000, "started"),
    ]
    decision = evaluate(inputs(build_window(records, "app", 3, 0, NOW)))
    assert decision.reason is BlockReason.HOURLY_CAP
    assert decision.retry_at == NOW - 3000 + 3600


def test_future_dated_attempts_stay_inside_the_window() -> None:
    """The clock stepped back two hours: the attempts written 'later' still count."""
    stepped_back = NOW - 7200
    records = [
        attempt(NOW - 30, "started"),
        attempt(NOW - 20, "started"),
        attempt(NOW - 10, "started"),
    ]
    window = build_window(records, "app", 3, 0, stepped_back)
    assert window.cap_reached
    assert evaluate(inputs(window)).reason is BlockReason.HOURLY_CAP
    assert any("dated after now" in line for line in evaluate(inputs(window)).explain)


def test_cooldown_follows_a_failure_and_survives_a_clock_step_back() -> None:
    records = [attempt(NOW - 100, "started"), attempt(NOW - 90, "failed")]
    assert (
        evaluate(inputs(build_window(records, "app", 3, 300, NOW))).reason is BlockReason.COOLDOWN
    )
    assert evaluate(inputs(build_window(records, "app", 3, 300, NOW + 211))).allowed
    stepped_back = build_window(records, "app", 3, 300, NOW - 3000)
    assert decide(inputs(stepped_back), Request(), NOW - 3000).reason is BlockReason.COOLDOWN


def test_gate_order_is_disabled_dependency_lock_cap_cooldown() -> None:
    full = build_window(
        [attempt(NOW - 5, "started")] * 3 + [attempt(NOW - 1, "failed")], "app", 3, 300, NOW
    )
    disabled = DisabledEntry(until=NOW + 60, since=NOW - 60, reason="x")
    assert (
        evaluate(inputs(full, disabled=disabled, dependencies_down=["db"], lock_held=True)).reason
        is BlockReason.DISABLED
    )
    assert (
        evaluate(inputs(full, dependencies_down=["db"], lock_held=True)).reason
        is BlockReason.DEPENDENCY
    )
    assert evaluate(inputs(full, lock_held=True)).reason is BlockReason.LOCK_HELD
    assert evaluate(inputs(full)).reason is BlockReason.HOURLY_CAP


def test_other_components_do_not_use_the_budget() -> None:
    records = [attempt(NOW - 5, "started", component="other")] * 5
    assert build_window(records, "app", 3, 0, NOW).used == 0


def test_clock_stepped_back_never_frees_budget_end_to_end(tmp_path: Path) -> None:
    config = base_config(
        {"app": command_component(["false"], {"fix": ["false"]})}, cooldown_seconds=0
    )
    core = make_core(tmp_path, config)
    codes = [core.recover("app")[0].code for _ in range(3)]
    assert codes == [ExitCode.UNHEALTHY] * 3
    core.clock.advance(-7200)
    assert core.recover("app")[0].reason == BlockReason.HOURLY_CAP
    core.clock.advance(7200 + 3601)
    assert (
        core.recover("app")[0].code == ExitCode.UNHEALTHY
    )  # an hour of real time later: budget again


def test_shadow_mode_records_but_does_not_act(tmp_path: Path) -> None:
    component = command_component(
        ["false"], {"fix": ["touch", str(tmp_path / "ran")]}, mode="shadow"
    )
    core = make_core(tmp_path, base_config({"app": component}))
    [report] = core.recover("app")
    assert report.outcome == "shadow" and report.code == ExitCode.BLOCKED
    assert not (tmp_path / "ran").exists()
    assert [r["outcome"] for r in core.records("attempt")] == ["shadow"]


def test_status_explain_shows_the_arithmetic(tmp_path: Path) -> None:
    from recovery_cli.handler_calls import Components
    from recovery_cli.status import component_status

    config = base_config({"app": command_component(["false"], {"fix": ["false"]})})
    core = make_core(tmp_path, config)
    core.recover("app")
    [row] = component_status(
        core.config, core.store, Components(core.config, core.env, core.store.root), probe=False
    )
    assert row.attempts_last_hour == 1 and row.cooldown_left_s == 300
    assert any(
        line.startswith("cooldown: last failure") and "(active)" in line for line in row.explain
    )
