"""Outcome analytics from a generated trail with known incidents: MTTR, uptime, success rates
and their Wilson bounds equal the values worked out by hand below, through the pure module,
the day summaries, ``history --stats`` and ``recovery metrics``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from recovery_cli.audit import AuditLog, new_id
from recovery_cli.counters import Tally, tally
from recovery_cli.handlers.util import format_ts
from recovery_cli.outcomes import change_of, component_outcomes, quantile, weighted_median
from tests.support.cli import Workspace, base_config, command_component

T0 = 1_795_125_600.0  # 2026-11-19T20:00:00Z: the window starts here
T1 = T0 + 36_000  # 2026-11-20T06:00:00Z: and ends here
SINCE, UNTIL = format_ts(T0), format_ts(T1)

# (seconds after T0, component, from, to, failure type)
CHANGES = [
    (-500, "redis", "healthy", "failing", None),  # before the window: not counted in it
    (-400, "redis", "failing", "healthy", None),
    (1000, "redis", "healthy", "failing", "connection_failed"),  # incident 1
    (1010, "redis", "failing", "recovering", "connection_failed"),
    (1100, "redis", "recovering", "healthy", None),  # 100 s to recover
    (2000, "chromadb", "failed", "recovering", "timeout"),  # down since before the window
    (2100, "chromadb", "recovering", "healthy", None),
    (5000, "redis", "healthy", "failing", "connection_failed"),  # incident 2
    (5020, "redis", "failing", "recovering", "connection_failed"),
    (5050, "redis", "recovering", "failed", "connection_failed"),
    (5400, "redis", "failed", "recovering", "connection_failed"),
    (5700, "redis", "recovering", "healthy", None),  # 700 s
    (9000, "redis", "healthy", "recovering", None),  # a run on a healthy redis: no incident
    (9030, "redis", "recovering", "healthy", None),
    (20000, "redis", "healthy", "failing", "persistence_failure"),  # incident 3
    (20010, "redis", "failing", "recovering", "persistence_failure"),
    (20310, "redis", "recovering", "healthy", None),  # 310 s
    (30000, "redis", "healthy", "failing", "connection_failed"),  # incident 4: open at T1
    (30005, "redis", "failing", "escalated", "connection_failed"),
    (40000, "redis", "escalated", "healthy", None),  # after the window: 10,000 s
]
# redis in healthy inside the window: [0, 1000) + [1100, 5000) + [5700, 9000)
# + [9030, 20000) + [20310, 30000) = 1000 + 3900 + 3300 + 10970 + 9690 = 28,860 s of 36,000
REDIS_UPTIME = round(100 * 28_860 / 36_000, 3)  # 80.167
CHROMA_UPTIME = round(100 * (36_000 - 2_100) / 36_000, 3)  # 94.167: healthy from 2100 on
RECOVERED = [100.0, 700.0, 310.0]
MTTR = (100 + 700 + 310) / 3  # 370.0
P90 = 310 + (700 - 310) * 0.8  # rank (3 - 1) * 0.9 = 1.8: 80% of the way from 310 to 700

RECONNECT = [float(s) for s in range(1, 11)]  # 1 success of 10; median (5 + 6) / 2
RESTART = [2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0, 30.0]  # 9 of 10; median 3.0


def by_hand_wilson(successes: int, runs: int) -> tuple[float, float]:
    """The Wilson score interval written out: (p + z²/2n ± z·√(p(1-p)/n + z²/4n²)) / (1 + z²/n)."""
    z, n, p = 1.959963984540054, runs, successes / runs
    centre = p + z * z / (2 * n)
    spread = z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return (centre - spread) / (1 + z * z / n), (centre + spread) / (1 + z * z / n)


def trail_records() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for offset, component, before, after, failure in CHANGES:
        record = {"event": "state_changed", "component": component, "from_state": before}
        record |= {"to_state": after, "reason": "generated"}
        if failure:
            record["failure_type"] = failure
        records.append({"ts": format_ts(T0 + offset), **record})
    steps = [("reconnect", d, i == 0) for i, d in enumerate(RECONNECT)]
    steps += [("restart_container", d, i != 9) for i, d in enumerate(RESTART)]
    for i, (strategy, seconds, ok) in enumerate(steps):
        records.append(
            {
                "ts": format_ts(T0 + 100 + i * 1000),
                "event": "step",
                "component": "redis",
                "strategy": strategy,
                "failure_type": "connection_failed",
                "outcome": "success" if ok else "failed",
                "duration_s": seconds,
            }
        )
    outside = {"event": "step", "component": "redis", "strategy": "reconnect"}
    records.append({"ts": format_ts(T0 - 300), **outside, "outcome": "success", "duration_s": 99})
    return sorted(records, key=lambda r: str(r["ts"]))


def write_generated_trail(state: Path) -> None:
    state.mkdir(mode=0o700, exist_ok=True)
    (state / "audit").mkdir(mode=0o700, exist_ok=True)
    audit = AuditLog(state / "audit")
    for record in trail_records():
        audit.append({"ts": record.pop("ts"), "id": new_id(), **record, "host": "h", "pid": 1})


@pytest.fixture
def trail(ws: Workspace) -> Workspace:
    ws.write_config(base_config({"redis": command_component(["true"], {"fix": ["true"]})}))
    write_generated_trail(ws.state)
    time.sleep(1.1)  # the day files settle, so the first --stats keeps their summaries
    return ws


def test_quantiles_and_medians_match_the_hand_figures() -> None:
    assert quantile(RECOVERED, 0.5) == 310.0
    assert quantile(RECOVERED, 0.9) == pytest.approx(P90)
    assert weighted_median({2.0: 3, 3.0: 3, 4.0: 3, 30.0: 1}) == 3.0
    assert weighted_median({float(s): 1 for s in range(1, 11)}) == 5.5
    assert by_hand_wilson(9, 10) == pytest.approx((0.5958, 0.9821), abs=1e-4)  # as tabulated
    assert by_hand_wilson(1, 10) == pytest.approx((0.0179, 0.4042), abs=1e-4)


def test_the_pure_module_gives_the_hand_figures() -> None:
    changes = [c for c in map(change_of, trail_records()) if c is not None]
    outcomes = {o.component: o for o in component_outcomes(changes, T0, T1, {})}

    redis, chroma = outcomes["redis"], outcomes["chromadb"]
    assert (redis.incidents, redis.recovered, redis.open) == (4, 3, 1)
    assert redis.by_failure_type == {"connection_failed": 3, "persistence_failure": 1}
    assert redis.mttr_s == MTTR and redis.median_ttr_s == 310.0
    assert redis.p90_ttr_s == round(P90, 3)
    assert redis.healthy_s == 28_860 and redis.observed_s == 36_000
    assert redis.uptime_pct == REDIS_UPTIME == 80.167
    assert (chroma.incidents, chroma.mttr_s, chroma.uptime_pct) == (0, None, CHROMA_UPTIME)
    # the same changes give the same numbers, in any run
    assert component_outcomes(changes, T0, T1, {}) == list(outcomes.values())


def stats(ws: Workspace, *args: str) -> list[dict[str, Any]]:
    result = ws.run("history", "--stats", "--since", SINCE, "--until", UNTIL, "--json", *args)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def test_history_stats_json_carries_the_hand_figures_cold_and_warm(trail: Workspace) -> None:
    cold = stats(trail, "--by", "component")
    kept = sorted(p.name for p in (trail.state / "audit" / "summaries").iterdir())
    warm = stats(trail, "--by", "component")

    assert kept == ["2026-11-19.json"]  # the complete day, answered from its summary now
    assert cold == warm
    redis = next(r for r in warm if r["component"] == "redis")
    assert redis == {
        "component": "redis",
        "incidents": 4,
        "recovered": 3,
        "open": 1,
        "by_failure_type": {"connection_failed": 3, "persistence_failure": 1},
        "mttr_s": 370.0,
        "median_ttr_s": 310.0,
        "p90_ttr_s": 622.0,
        "uptime_pct": 80.167,
        "healthy_s": 28860.0,
        "observed_s": 36000.0,
    }
    chroma = next(r for r in warm if r["component"] == "chromadb")
    assert (chroma["incidents"], chroma["uptime_pct"]) == (0, 94.167)


def test_history_stats_rows_carry_rates_wilson_bounds_and_medians(trail: Workspace) -> None:
    rows = {r["strategy"]: r for r in stats(trail)}

    reconnect, restart = rows["reconnect"], rows["restart_container"]
    assert (reconnect["runs"], reconnect["successes"], reconnect["success_rate"]) == (10, 1, 0.1)
    assert (restart["runs"], restart["successes"], restart["success_rate"]) == (10, 9, 0.9)
    low, high = by_hand_wilson(9, 10)
    assert (restart["rate_low"], restart["rate_high"]) == (round(low, 3), round(high, 3))
    low, high = by_hand_wilson(1, 10)
    assert (reconnect["rate_low"], reconnect["rate_high"]) == (round(low, 3), round(high, 3))
    assert reconnect["median_duration_s"] == 5.5  # the step before the window is left out
    assert restart["median_duration_s"] == 3.0
    assert restart["mean_duration_s"] == round(sum(RESTART) / 10, 3)


def test_history_stats_table_shows_both_views(trail: Workspace) -> None:
    result = trail.run("history", "--stats", "--since", SINCE, "--until", UNTIL)
    only = trail.run("history", "--stats", "--by", "strategy", "--since", SINCE)
    lone = trail.run("history", "--by", "component")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    redis = next(ln for ln in lines[lines.index("components") :] if ln.startswith("redis"))
    assert redis.split() == ["redis", "4", "3", "1", "6m10s", "5m10s", "10m22s", "80.167%", "10h"]
    assert "60%-98%" in result.stdout  # restart_container's 95% interval
    assert "components" not in only.stdout.splitlines()
    assert lone.returncode == 2 and "--by goes with --stats" in lone.stderr


def test_metrics_count_incidents_and_times_to_recover(trail: Workspace) -> None:
    text = trail.run("metrics").stdout
    rows = json.loads(trail.run("metrics", "--json").stdout)

    incidents = 'infra_recovery_incidents_total{component="redis",failure_type="%s"} %s'
    assert incidents % ("connection_failed", "3.0") in text
    assert incidents % ("persistence_failure", "1.0") in text
    assert incidents % ("-", "1.0") in text  # the one before the window: no failure type
    assert 'infra_recovery_incidents_total{component="chromadb"' not in text  # begun unseen
    ttr = "infra_recovery_time_to_recover_seconds"
    # 100 (before the window), 100, 700, 310 and 10,000 seconds
    assert f'{ttr}_count{{component="redis"}} 5.0' in text
    assert f'{ttr}_sum{{component="redis"}} 11210.0' in text
    assert f'{ttr}_bucket{{component="redis",le="120.0"}} 2.0' in text
    assert f'{ttr}_bucket{{component="redis",le="600.0"}} 3.0' in text
    assert f'{ttr}_bucket{{component="redis",le="1800.0"}} 4.0' in text
    assert f'{ttr}_bucket{{component="redis",le="7200.0"}} 4.0' in text
    assert f'{ttr}_bucket{{component="redis",le="21600.0"}} 5.0' in text
    assert {"name": f"{ttr}_count", "labels": {"component": "redis"}, "value": 5.0} in rows
    assert "infra_recovery_component_up" in text  # uptime in PromQL: avg_over_time of it


def test_incident_totals_survive_pruning_an_incident_open_across_the_cut() -> None:
    records = trail_records()
    for cut in range(len(records) + 1):
        pruned = Tally.from_json(json.loads(json.dumps(tally(records[:cut]).to_json())))
        totals = pruned.add(tally(records[cut:]))
        whole = tally(records)
        assert dict(totals.incidents) == dict(whole.incidents), cut
        assert totals.recover_times == whole.recover_times, cut


def test_a_real_run_records_the_failure_type_an_incident_starts_with(ws: Workspace) -> None:
    ws.write_config(base_config({"app": command_component(["false"], {"fix": ["true"]})}))
    ws.run("recover")
    left = [r for r in ws.events("state_changed", "app") if r["from_state"] == "healthy"]
    rows = json.loads(ws.run("history", "--stats", "--by", "component", "--json").stdout)
    metrics = ws.run("metrics").stdout

    assert len(left) == 1 and left[0]["to_state"] == "failing" and left[0]["failure_type"]
    failure = left[0]["failure_type"]
    assert rows[0]["component"] == "app" and rows[0]["by_failure_type"] == {failure: 1}
    assert rows[0]["open"] == 1 and rows[0]["uptime_pct"] == 0.0
    expected = f'infra_recovery_incidents_total{{component="app",failure_type="{failure}"}} 1.0'
    assert expected in metrics


def test_the_postgres_backend_answers_as_the_day_files_do(tmp_path: Path, pg_dsn: str) -> None:
    from tests.support.fleet import Fleet

    fleet = Fleet(tmp_path, pg_dsn)
    write_generated_trail(tmp_path / "state-h")
    fleet.write_config({"redis": command_component(["true"], {"fix": ["true"]})})
    postgres = fleet.config.read_text()
    fleet.config.write_text(postgres.replace("backend: postgres", "backend: file"))
    window = ("history", "--stats", "--since", SINCE, "--until", UNTIL, "--json")
    queries = [window, (*window, "--by", "component"), ("history", "--stats", "--json")]
    on_files = [fleet.run("h", *q) for q in queries]
    files_metrics = fleet.run("h", "metrics").stdout
    fleet.config.write_text(postgres)
    imported = fleet.run("h", "state", "import")
    on_postgres = [fleet.run("h", *q) for q in queries]
    pg_metrics = fleet.run("h", "metrics").stdout

    assert imported.returncode == 0, imported.stderr
    for old, new in zip(on_files, on_postgres, strict=True):
        assert old.returncode == new.returncode == 0, new.stderr
        assert json.loads(new.stdout) == json.loads(old.stdout)
    redis = next(r for r in json.loads(on_postgres[1].stdout) if r["component"] == "redis")
    assert (redis["mttr_s"], redis["uptime_pct"], redis["incidents"]) == (370.0, 80.167, 4)
    restart = next(r for r in json.loads(on_postgres[0].stdout) if r["strategy"] != "reconnect")
    assert (restart["median_duration_s"], restart["rate_low"]) == (3.0, 0.596)
    ttr = 'infra_recovery_time_to_recover_seconds_sum{component="redis"} 11210.0'
    assert ttr in files_metrics and ttr in pg_metrics


def write_as_written(state: Path, rows: list[tuple[float, str, str, str, str | None]]) -> None:
    """``state_changed`` records appended in the order given (not sorted by ``ts``)."""
    state.mkdir(mode=0o700, exist_ok=True)
    (state / "audit").mkdir(mode=0o700, exist_ok=True)
    audit = AuditLog(state / "audit")
    for offset, component, before, after, failure in rows:
        record = {"event": "state_changed", "component": component, "from_state": before}
        record |= {"to_state": after, "reason": "generated", "host": "h", "pid": 1}
        record |= {"failure_type": failure} if failure else {}
        audit.append({"ts": format_ts(T0 + offset), "id": new_id(), **record})


def component_stats(ws: Workspace, *window: str) -> dict[str, dict[str, Any]]:
    result = ws.run("history", "--stats", "--by", "component", "--json", *window)
    assert result.returncode == 0, result.stderr
    return {row["component"]: row for row in json.loads(result.stdout)}


def test_a_clock_stepped_back_mid_incident_keeps_it_recovered_and_invents_no_downtime(
    ws: Workspace,
) -> None:
    ws.write_config(base_config({"app": command_component(["true"], {"fix": ["true"]})}))
    write_as_written(
        ws.state,
        [
            (3600, "app", "healthy", "failing", "connection_failed"),
            (3580, "app", "failing", "recovering", "connection_failed"),  # the clock: -20 s
            (3585, "app", "recovering", "healthy", None),
        ],
    )

    app = component_stats(ws, "--since", SINCE, "--until", format_ts(T0 + 7200))["app"]

    assert (app["incidents"], app["recovered"], app["open"]) == (1, 1, 0)
    assert app["mttr_s"] == 0.0  # ended no earlier than it began
    assert app["uptime_pct"] == 100.0


def test_without_since_a_misdated_first_record_does_not_hide_the_incidents(
    ws: Workspace,
) -> None:
    ws.write_config(base_config({"app": command_component(["true"], {"fix": ["true"]})}))
    write_as_written(
        ws.state,
        [
            (10_000, "app", "healthy", "healthy", None),  # dated after what follows it
            (1000, "app", "healthy", "failing", "timeout"),
            (1600, "app", "failing", "healthy", None),
        ],
    )

    app = component_stats(ws)["app"]

    assert (app["incidents"], app["recovered"], app["mttr_s"]) == (1, 1, 600.0)
