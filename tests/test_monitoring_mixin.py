"""The monitoring mixin (``deploy/monitoring/``): the rules pass promtool and their unit tests,
the Alertmanager example passes amtool and inhibits what it says, and every metric the rules
and the dashboard use is one ``recovery metrics`` really emits."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.alertmanager import Alertmanager, running_alertmanager
from tests.support.cli import Workspace, base_config, command_component

ROOT = Path(__file__).resolve().parents[1]
MIXIN = ROOT / "deploy" / "monitoring"
ALERTS = MIXIN / "alerts.yml"
RECORDING = MIXIN / "recording_rules.yml"
RULE_TESTS = sorted((MIXIN / "tests").glob("*.yml"))
ALERTMANAGER = MIXIN / "alertmanager.yml"
DASHBOARD = MIXIN / "dashboard.json"
PLAYBOOK = ROOT / "docs" / "RECOVERY_PLAYBOOK.md"
EXPECTED_ALERTS = {
    "RecoveryRunnerStalled",
    "RecoveryComponentDown",
    "RecoveryBlockedWhileDown",
    "RecoveryApprovalPending",
    "RecoveryEscalated",
    "RecoveryAuditCorrupt",
}
# A dashboard variable stands for a value; these make its expressions plain PromQL.
GRAFANA_VARIABLES = {"__range": "1d", "__rate_interval": "5m", "__interval": "1m"}
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def tool(name: str) -> str:
    """The tool's path. CI installs it (scripts/test), so there a missing tool fails."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; scripts/test installs it")
        pytest.skip(f"{name} is not installed (Debian prometheus / prometheus-alertmanager)")
    return path


def rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def alert_rules() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules(ALERTS)}


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules(RECORDING)}


def dashboard_targets() -> Iterator[dict[str, Any]]:
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        yield from panel.get("targets", [])


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of the dashboard, its variables substituted."""
    found = [target["expr"] for target in dashboard_targets()]
    for variable in json.loads(DASHBOARD.read_text())["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            selector = re.fullmatch(r"label_values\((.+), *\w+\)", query)
            assert selector is not None, query
            found.append(selector.group(1))
    return [substitute(expr) for expr in found]


def substitute(expr: str) -> str:
    return re.sub(r"\$(\w+)", lambda m: GRAFANA_VARIABLES.get(m.group(1), ".*"), expr)


def metric_names(expr: str) -> set[str]:
    """The series names an expression reads: identifiers outside string literals that start
    with ``infra_`` or hold a colon (functions, keywords and label names do neither; the state
    set's one label is named like its metric, so it counts as that metric)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return {n for n in NAME.findall(bare) if n.startswith("infra_") or ":" in n}


def rule_expressions() -> list[str]:
    return [rule["expr"] for rule in rules(ALERTS) + rules(RECORDING)]


def run(argv: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_promtool_check_rules_accepts_both_rule_files() -> None:
    checked = run([tool("promtool"), "check", "rules", str(ALERTS), str(RECORDING)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout
    assert f"SUCCESS: {len(recorded_names())} rules found" in checked.stdout


def test_promtool_test_rules_passes() -> None:
    tested = run([tool("promtool"), "test", "rules", *map(str, RULE_TESTS)])
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert RULE_TESTS, "no unit-test files"
    assert tested.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_the_rules_are_the_six_alerts_each_labelled_and_annotated() -> None:
    found = alert_rules()
    assert set(found) == EXPECTED_ALERTS
    for name, rule in found.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name


def github_anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_runbook_url_names_a_playbook_section() -> None:
    headings = [
        line.lstrip("#").strip()
        for line in PLAYBOOK.read_text().splitlines()
        if re.match(r"#{1,4} ", line)
    ]
    anchors = {github_anchor(h) for h in headings}
    for name, rule in alert_rules().items():
        page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert page == "docs/RECOVERY_PLAYBOOK.md", name
        assert anchor in anchors, (name, anchor)


def unit_tests() -> list[dict[str, Any]]:
    return [test for path in RULE_TESTS for test in yaml.safe_load(path.read_text())["tests"]]


def test_every_alert_has_a_unit_test_that_fires_and_one_that_does_not() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for test in unit_tests():
        for case in test.get("alert_rule_test", []):
            (fired if case["exp_alerts"] else quiet).add(case["alertname"])
    assert fired == EXPECTED_ALERTS
    assert quiet == EXPECTED_ALERTS


def test_the_dead_mans_switch_is_tested_for_stopped_runs_and_an_absent_series() -> None:
    stalled = [
        test
        for test in unit_tests()
        if any(
            c["alertname"] == "RecoveryRunnerStalled" and c["exp_alerts"]
            for c in test.get("alert_rule_test", [])
        )
    ]
    inputs = [{s["series"].split("{")[0] for s in t["input_series"]} for t in stalled]
    assert "infra_recovery_last_run_timestamp_seconds" in set().union(*inputs)
    assert any("infra_recovery_last_run_timestamp_seconds" not in names for names in inputs)


def test_every_recording_rule_has_a_unit_test() -> None:
    tested = {
        name
        for test in unit_tests()
        for case in test.get("promql_expr_test", [])
        for name in metric_names(case["expr"])
    }
    assert recorded_names() <= tested


def test_amtool_accepts_the_alertmanager_example() -> None:
    checked = run([tool("amtool"), "check-config", str(ALERTMANAGER)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    inhibit_rules = yaml.safe_load(ALERTMANAGER.read_text())["inhibit_rules"]
    assert f"{len(inhibit_rules)} inhibit rules" in checked.stdout


def test_every_component_others_depend_on_has_an_inhibit_rule() -> None:
    shipped = yaml.safe_load((ROOT / "recovery_config.yml").read_text())["components"]
    roots = {dep for block in shipped.values() for dep in block.get("depends_on", [])}
    assert roots, "the shipped config has dependencies"
    by_rules: set[str] = set()
    by_tool: set[str] = set()
    for rule in yaml.safe_load(ALERTMANAGER.read_text())["inhibit_rules"]:
        source = set(rule["source_matchers"])
        if 'alertname="RecoveryComponentDown"' in source:  # the rules' alert for the root
            [component] = [m for m in source if m.startswith("component=")]
            root = component.split("=", 1)[1].strip('"')
            by_rules.add(root)
        else:  # the tool's own alert for the root
            [matcher] = source
            root = matcher.removeprefix("root_cause=").strip('"')
            assert matcher == f'root_cause="{root}"' and rule["equal"] == ["host"]
            by_tool.add(root)
        assert rule["target_matchers"] == [f'inhibited_by=~"(.+,)?{root}(,.+)?"']
    assert by_rules == roots and by_tool == roots


def states_become(manager: Alertmanager, expected: dict[str, str]) -> dict[str, str]:
    """The alerts' states by component, once they are ``expected`` (or after 10 s)."""
    states: dict[str, str] = {}
    deadline = time.monotonic() + 10
    while states != expected and time.monotonic() < deadline:
        states = {a["labels"]["component"]: a["status"]["state"] for a in manager.alerts()}
        time.sleep(0.1)
    return states


ROOT_DOWN = {"alertname": "RecoveryComponentDown", "component": "system", "severity": "critical"}
DEPENDENTS = [
    {"alertname": "RecoveryBlockedWhileDown", "component": "redis", "inhibited_by": "system"},
    {"alertname": "RecoveryBlockedWhileDown", "component": "chromadb", "inhibited_by": "redis"},
    {"alertname": "RecoveryComponentDown", "component": "openwebui"},
    {"alertname": "RecoveryBlockedWhileDown", "component": "app", "inhibited_by": "cache,system"},
    {"alertname": "RecoveryBlockedWhileDown", "component": "edge", "inhibited_by": "systemd"},
]


def test_the_root_down_inhibits_its_dependents_in_a_real_alertmanager(tmp_path: Path) -> None:
    tool("prometheus-alertmanager")
    with running_alertmanager(tmp_path, config_text=ALERTMANAGER.read_text()) as manager:
        manager.post([{"labels": labels} for labels in [ROOT_DOWN, *DEPENDENTS]])
        held = {
            "system": "active",
            "redis": "suppressed",  # its root is down
            "chromadb": "active",  # the root it names is not down
            "openwebui": "active",  # it names no root
            "app": "suppressed",  # one of the roots it names is down
            "edge": "active",  # a root whose name only starts like the one down
        }
        assert states_become(manager, held) == held
        ended = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
        manager.post([{"labels": ROOT_DOWN, "startsAt": ended, "endsAt": ended}])
        released = dict.fromkeys(("redis", "chromadb", "openwebui", "app", "edge"), "active")
        assert states_become(manager, released) == released, "the root resolved: not held"


def real_exposition(ws: Workspace, flag_dir: Path) -> str:
    """``recovery metrics`` after a trail with a success, a failure, a cooldown block, a
    break-glass run, a pending approval, a degraded mode and a recovered incident."""
    fixed, waiting = flag_dir / "fixed", flag_dir / "waiting"
    config = base_config(
        {
            "app": command_component(["test", "-f", str(fixed)], {"fix": ["touch", str(fixed)]}),
            "bad": command_component(["false"], {"fix": ["false"]}),
            "gated": command_component(
                ["test", "-f", str(waiting)], {"fix": ["touch", str(waiting)]}
            ),
        }
    )
    config["components"]["gated"]["strategies"]["fix"]["approval"] = "required"
    config["degraded_modes"] = {
        "bad_down": {"component": "bad", "capabilities": {"x": "unavailable"}}
    }
    ws.write_config(config)
    assert ws.run("recover").returncode == 1
    assert ws.run("recover").returncode == 3  # bad cools down
    override = ws.run("recover", "bad", "--override-limits", "--reason", "drill", "--as", "ops")
    assert override.returncode == 1, override.stderr
    metrics = ws.run("metrics")
    assert metrics.returncode == 0, metrics.stderr
    return metrics.stdout


def emitted(exposition: str) -> dict[str, str]:
    """Sample name -> family type, for every sample line of the exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        sample.name: family.type
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def test_every_metric_the_rules_and_dashboard_use_is_emitted(ws: Workspace, tmp_path: Path) -> None:
    samples = emitted(real_exposition(ws, tmp_path))
    expressions = rule_expressions() + dashboard_expressions()
    used = set().union(*map(metric_names, expressions))
    raw = {name for name in used if ":" not in name}
    assert {
        "infra_recovery_last_run_timestamp_seconds",
        "infra_recovery_component_up",
        "infra_recovery_time_to_recover_seconds_bucket",
        "infra_recovery_incidents_total",
    } <= raw
    assert sorted(raw - set(samples)) == [], "used but not in `recovery metrics`"
    assert sorted(used - raw - recorded_names()) == [], "recorded names with no recording rule"
    for expr in expressions:
        for name in re.findall(r"\b(?:rate|increase)\(\s*([a-zA-Z_:][\w:]*)", expr):
            assert samples[name] in {"counter", "histogram"}, (name, expr)


def test_the_dashboard_is_a_grafana_dashboard_on_a_datasource_variable() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["schemaVersion"] >= 36 and board["uid"] and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    titles = " ".join(p["title"].lower() for p in panels)
    for subject in ("health", "attempts", "blocks", "time to recover", "uptime", "approvals"):
        assert subject in titles, subject
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for cell in itertools.product(
            range(grid["x"], grid["x"] + grid["w"]), range(grid["y"], grid["y"] + grid["h"])
        ):
            assert cell not in cells, (panel["title"], "overlaps", cells[cell])
            cells[cell] = panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]


def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each expression as a recording rule's."""
    checked_rules = [
        {"record": f"dashboard:expr:{i}", "expr": expr}
        for i, expr in enumerate(dashboard_expressions())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": checked_rules}]}))
    checked = run([tool("promtool"), "check", "rules", str(path)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(checked_rules)} rules found" in checked.stdout
