"""Adaptive chains: the order is ranked from the trail's step records, by the Wilson lower
bound, with approval steps as fences, under-observed steps in place, nothing dropped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from recovery_cli.chain_order import explain, rank, resolve, step_counts
from recovery_cli.config import parse_config
from recovery_cli.environment import Environment
from recovery_cli.handler_calls import Components
from recovery_cli.orchestrator import Orchestrator, RecoverRequest
from recovery_cli.success_rate import wilson
from tests.support.cli import base_config, command_component
from tests.support.core import Core, make_core
from tests.support.step_trail import FLAG_FAILURE, flag_component, seed_steps

FAILURE = FLAG_FAILURE
DAY = 86400


app = flag_component


def core_with(tmp_path: Path, **extra: Any) -> Core:
    config = base_config({"app": app(tmp_path / "flag", **extra)}, cooldown_seconds=0)
    return make_core(tmp_path, config)


def steps_run(core: Core, seeded: list[str]) -> list[tuple[str, str]]:
    return [(r["strategy"], r["outcome"]) for r in core.records("step") if r["id"] not in seeded]


def intent(core: Core) -> dict[str, Any]:
    [started] = [r for r in core.records("attempt") if r["outcome"] == "started"]
    return started


NINE_OF_TEN = {"reconnect": (10, 1), "restart_container": (10, 9)}


def test_the_strategy_that_fixed_it_9_of_10_times_runs_first(tmp_path: Path) -> None:
    core = core_with(tmp_path, chain_order="adaptive")
    seeded = seed_steps(core.store, "app", FAILURE, NINE_OF_TEN)
    [report] = core.recover("app")
    assert report.outcome == "recovered"
    assert steps_run(core, seeded) == [("restart_container", "success")]
    order = intent(core)["chain_order"]
    assert order["mode"] == "adaptive" and order["failure_type"] == FAILURE
    assert order["order"] == ["restart_container", "reconnect"]
    assert order["configured"] == ["reconnect", "restart_container"]
    assert order["basis"]["restart_container"] == {
        "runs": 10,
        "successes": 9,
        "wilson_low": round(wilson(9, 10).low, 4),
        "approval": "auto",
        "ranked": True,
    }
    assert order["basis"]["reconnect"]["successes"] == 1
    assert "ranked by Wilson lower bound" in order["why"]


def test_configured_order_is_the_default_and_ignores_the_trail(tmp_path: Path) -> None:
    core = core_with(tmp_path)
    seeded = seed_steps(core.store, "app", FAILURE, NINE_OF_TEN)
    core.recover("app")
    assert steps_run(core, seeded) == [("reconnect", "success"), ("restart_container", "success")]
    assert intent(core)["chain_order"] == {
        "mode": "configured",
        "order": ["reconnect", "restart_container"],
        "why": "configured order",
    }


def test_below_min_runs_the_configured_order_stands(tmp_path: Path) -> None:
    core = core_with(tmp_path, chain_order="adaptive")
    seeded = seed_steps(
        core.store, "app", FAILURE, {"reconnect": (10, 0), "restart_container": (4, 4)}
    )
    core.recover("app")
    assert steps_run(core, seeded)[0] == ("reconnect", "success")
    order = intent(core)["chain_order"]
    assert order["order"] == ["reconnect", "restart_container"]
    assert order["basis"]["restart_container"]["ranked"] is False


def test_a_component_may_lower_min_runs(tmp_path: Path) -> None:
    core = core_with(tmp_path, chain_order="adaptive", adaptive={"min_runs": 4})
    seeded = seed_steps(
        core.store, "app", FAILURE, {"reconnect": (10, 0), "restart_container": (4, 4)}
    )
    core.recover("app")
    assert steps_run(core, seeded) == [("restart_container", "success")]
    assert intent(core)["chain_order"]["min_runs"] == 4


def test_records_of_another_failure_type_or_outside_the_window_do_not_count(
    tmp_path: Path,
) -> None:
    core = core_with(tmp_path, chain_order="adaptive", adaptive={"window_days": 7})
    core.clock.advance(-10 * DAY)
    old = seed_steps(core.store, "app", FAILURE, NINE_OF_TEN)
    core.clock.advance(10 * DAY)
    other = seed_steps(core.store, "app", "probe_critical", NINE_OF_TEN)
    core.recover("app")
    assert steps_run(core, old + other)[0] == ("reconnect", "success")
    assert intent(core)["chain_order"]["basis"]["restart_container"]["runs"] == 0


def test_an_approval_step_never_moves_ahead_of_an_automatic_one(tmp_path: Path) -> None:
    component = app(tmp_path / "flag", chain_order="adaptive")
    component["strategies"]["restart_container"]["approval"] = "required"
    core = make_core(tmp_path, base_config({"app": component}, cooldown_seconds=0))
    seeded = seed_steps(
        core.store, "app", FAILURE, {"reconnect": (10, 0), "restart_container": (20, 20)}
    )
    [report] = core.recover("app")
    assert report.outcome == "awaiting_approval"
    assert steps_run(core, seeded) == [("reconnect", "success")]
    [asked] = core.records("approval_requested")
    assert asked["strategy"] == "restart_container"
    basis = intent(core)["chain_order"]["basis"]["restart_container"]
    assert basis["approval"] == "required" and basis["ranked"] is False


def test_the_approved_step_continues_in_the_adaptive_order(tmp_path: Path) -> None:
    """[gate(required), reconnect, restart_container]: after the approval the automatic steps
    behind it run best first."""
    flag = tmp_path / "flag"
    component = command_component(
        ["test", "-f", str(flag)],
        {"gate": ["true"], "reconnect": ["true"], "restart_container": ["touch", str(flag)]},
        chain_order="adaptive",
    )
    component["strategies"]["gate"]["approval"] = "required"
    core = make_core(tmp_path, base_config({"app": component}, cooldown_seconds=0))
    seeded = seed_steps(core.store, "app", FAILURE, NINE_OF_TEN)
    [report] = core.recover("app")
    assert report.approval_id is not None
    approved = core.approve(report.approval_id, "erin")
    assert approved.outcome == "recovered"
    assert steps_run(core, seeded) == [("gate", "success"), ("restart_container", "success")]
    [started] = [r for r in core.records("attempt") if r["outcome"] == "started"]
    assert started["chain_order"]["order"] == ["gate", "restart_container", "reconnect"]


def test_a_shadow_attempt_records_the_order_it_would_use(tmp_path: Path) -> None:
    core = core_with(tmp_path, chain_order="adaptive", mode="shadow")
    seed_steps(core.store, "app", FAILURE, NINE_OF_TEN)
    core.recover("app")
    [shadow] = [r for r in core.records("attempt") if r["outcome"] == "shadow"]
    assert shadow["strategy"] == "restart_container,reconnect"
    assert shadow["chain_order"]["order"] == ["restart_container", "reconnect"]


def test_the_postgres_backend_ranks_from_its_own_rows(tmp_path: Path, pg_dsn: str) -> None:
    """Only this host's steps count for a host-scoped component: another host's 90 of 90
    reconnects would put reconnect first."""
    from recovery_cli.pg_store import PgStore
    from tests.support.clock import FakeClock

    flag = tmp_path / "flag"
    config = base_config({"app": app(flag, chain_order="adaptive")}, cooldown_seconds=0)
    config["state"] = {"backend": "postgres", "dsn_env": "TEST_DSN"}
    parsed = parse_config(yaml.safe_dump(config), "test.yml")
    env = Environment(environ={"USER": "tester", "TEST_DSN": pg_dsn}, clock=FakeClock(), host="h1")
    store = PgStore(tmp_path / "state", env, parsed, pg_dsn)
    try:
        seed_steps(store, "app", FAILURE, NINE_OF_TEN)
        seed_steps(store, "app", FAILURE, {"reconnect": (90, 90)}, host="h2")
        assert resolve(parsed, store, "app", FAILURE).order == ("restart_container", "reconnect")
        runner = Orchestrator(parsed, store, env, Components(parsed, env, store.root))
        runner.recover(RecoverRequest(components=("app",), trigger="cron"))
        rows = list(store.audit.read_forward())
    finally:
        store.close()
    [started] = [r for r in rows if r["event"] == "attempt" and r["outcome"] == "started"]
    assert started["chain_order"]["basis"]["reconnect"]["runs"] == 10
    steps = [r["strategy"] for r in rows if r["event"] == "step" and r["detail"] != "seeded"]
    assert steps == ["restart_container"]


# -- the ordering itself ------------------------------------------------------------------


def test_ties_keep_the_configured_order() -> None:
    counts = {"a": (6, 3), "b": (6, 3), "c": (6, 5)}
    order, _ = rank(["a", "b", "c"], lambda s: False, counts, 5)
    assert order == ("c", "a", "b")


def test_under_observed_steps_keep_their_place_and_the_rest_sort_around_them() -> None:
    counts = {"a": (10, 1), "c": (10, 9)}  # b has no runs
    order, basis = rank(["a", "b", "c"], lambda s: False, counts, 5)
    assert order == ("c", "b", "a")
    assert [b.ranked for b in basis] == [True, False, True]


def test_no_step_moves_across_an_approval_fence() -> None:
    counts = {"a": (10, 0), "gate": (10, 10), "c": (10, 10), "d": (10, 0)}
    order, _ = rank(["a", "gate", "d", "c"], lambda s: s == "gate", counts, 5)
    assert order == ("a", "gate", "c", "d")


def test_a_run_is_a_success_only_when_the_step_left_the_component_healthy() -> None:
    def step(**fields: Any) -> dict[str, Any]:
        base = {"event": "step", "component": "app", "strategy": "s", "failure_type": "f"}
        return {**base, **fields}

    records = [
        step(outcome="success", health_after="healthy"),
        step(outcome="success", health_after="down"),
        step(outcome="failed", health_after="healthy"),
        step(outcome="interrupted"),  # no run
        step(outcome="success", health_after="healthy", failure_type="other"),
        step(outcome="success", health_after="healthy", component="else"),
        {**step(outcome="success", health_after="healthy"), "event": "attempt"},
    ]
    assert step_counts(records, "app", "f") == {"s": (3, 1)}


def test_explain_names_each_number() -> None:
    order, basis = rank(
        ["reconnect", "restart_container"],
        lambda s: False,
        {"reconnect": (10, 1), "restart_container": (10, 9)},
        5,
    )
    from recovery_cli.chain_order import ChainOrder

    lines = explain(
        ChainOrder(
            "adaptive", order, ("reconnect", "restart_container"), "f", 5, 30, basis
        ).to_record()
    )
    assert lines[0] == "chain (adaptive): restart_container, reconnect (failure f)"
    assert "  restart_container: 9 of 10 runs succeeded, Wilson low 0.596 (ranked)" in lines


POOL = ("reconnect", "restart_container", "flush_corrupted", "gc", "failover", "reboot")
step_record = st.fixed_dictionaries(
    {
        "event": st.sampled_from(["step", "step", "attempt"]),
        "component": st.sampled_from(["app", "app", "other"]),
        "strategy": st.sampled_from(POOL),
        "failure_type": st.sampled_from(["f", "f", "g", None]),
        "outcome": st.sampled_from(["success", "failed", "interrupted"]),
        "health_after": st.sampled_from(["healthy", "down", "degraded"]),
    }
)


@st.composite
def trails(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Up to 12 counted steps per strategy (so many reach min_runs), other records mixed in,
    in any order."""
    records: list[dict[str, Any]] = []
    for name in POOL:
        runs = draw(st.integers(0, 12))
        fixed = draw(st.integers(0, runs))
        step = {"event": "step", "component": "app", "strategy": name, "failure_type": "f"}
        records += [{**step, "outcome": "success", "health_after": "healthy"}] * fixed
        records += [{**step, "outcome": "failed", "health_after": "down"}] * (runs - fixed)
    records += draw(st.lists(step_record, max_size=30))
    return draw(st.permutations(records))


@settings(max_examples=300, deadline=None)
@given(
    chain=st.lists(st.sampled_from(POOL), min_size=1, max_size=6, unique=True),
    required=st.sets(st.sampled_from(POOL)),
    trail=trails(),
    min_runs=st.integers(1, 6),
)
def test_the_order_is_a_pure_permutation_that_respects_fences(
    chain: list[str], required: set[str], trail: list[dict[str, Any]], min_runs: int
) -> None:
    def needs(strategy: str) -> bool:
        return strategy in required

    order, basis = rank(chain, needs, step_counts(trail, "app", "f"), min_runs)
    # the same trail, in any record order, gives the same order
    assert (order, basis) == rank(chain, needs, step_counts(list(trail), "app", "f"), min_runs)
    assert order == rank(chain, needs, step_counts(trail[::-1], "app", "f"), min_runs)[0]
    assert sorted(order) == sorted(chain)  # nothing dropped, nothing added
    by_name = {b.strategy: b for b in basis}
    for index, strategy in enumerate(chain):
        if needs(strategy) or not by_name[strategy].ranked:
            assert order[index] == strategy  # fences and under-observed steps stay put
    for a in chain:
        for b in chain:
            if needs(a) != needs(b) and chain.index(a) < chain.index(b):
                assert order.index(a) < order.index(b)  # nothing crosses a fence
    ranked = [by_name[s].wilson_low for s in order if by_name[s].ranked]
    fences = [i for i, s in enumerate(chain) if needs(s)]
    if not fences:
        assert ranked == sorted(ranked, reverse=True)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"chain_order": "random"}, "chain_order"),
        ({"chain_order": "adaptive", "adaptive": {"min_runs": 0}}, "adaptive.min_runs"),
        ({"chain_order": "adaptive", "adaptive": {"window_days": 0}}, "adaptive.window_days"),
        ({"chain_order": "adaptive", "adaptive": {"min_run": 3}}, "adaptive.min_run"),
    ],
)
def test_bad_adaptive_settings_are_config_errors(
    tmp_path: Path, block: dict[str, Any], message: str
) -> None:
    from recovery_cli.errors import ConfigError

    config = base_config({"app": app(tmp_path / "flag", **block)})
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_dump(config), "test.yml")
    assert f"components.app.{message}" in str(caught.value)


def test_defaults_set_min_runs_for_every_component_and_a_component_overrides(
    tmp_path: Path,
) -> None:
    config = base_config(
        {
            "a": app(tmp_path / "a", chain_order="adaptive"),
            "b": app(tmp_path / "b", chain_order="adaptive", adaptive={"min_runs": 2}),
        },
        adaptive={"min_runs": 8, "window_days": 14},
    )
    parsed = parse_config(yaml.safe_dump(config), "test.yml")
    assert (parsed.adaptive("a").min_runs, parsed.adaptive("a").window_days) == (8, 14)
    assert (parsed.adaptive("b").min_runs, parsed.adaptive("b").window_days) == (2, 14)
    assert parsed.warnings == []


def test_adaptive_settings_without_adaptive_order_warn(tmp_path: Path) -> None:
    config = base_config({"app": app(tmp_path / "flag", adaptive={"min_runs": 2})})
    parsed = parse_config(yaml.safe_dump(config), "test.yml")
    assert any(
        "components.app.adaptive" in w and "chain_order is adaptive" in w for w in parsed.warnings
    )


def test_the_schema_knows_the_new_keys_and_refuses_unknown_ones() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from recovery_cli.config_schema import config_schema

    schema = config_schema()
    good = base_config(
        {"app": app(Path("/x"), chain_order="adaptive", adaptive={"min_runs": 3})},
        adaptive={"min_runs": 6},
    )
    jsonschema.validate(good, schema)
    bad = base_config({"app": app(Path("/x"), chain_order="adaptive", adaptive={"runs": 3})})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
