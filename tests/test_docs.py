"""The playbook documents every command, exit code, gate, event, strategy and failure type."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from recovery_cli.alerts import (
    ALERT_NAMES,
    BLAST_RADIUS_ALERT,
    DATA_LOSS_ALERT,
    ON_FALLBACK_ALERT,
)
from recovery_cli.audit import Event
from recovery_cli.cli import app
from recovery_cli.errors import ExitCode
from recovery_cli.lifecycle import LifeState
from recovery_cli.policy import BlockReason, HoldReason, Outcome
from recovery_cli.registry import KINDS, is_available, kind_spec

ROOT = Path(__file__).parents[1]
PLAYBOOK = (ROOT / "docs" / "RECOVERY_PLAYBOOK.md").read_text()
README = (ROOT / "README.md").read_text()
FAILURE_CALL = re.compile(r"""\.(?:down|degraded|failure)\(\s*["']([a-z][a-z0-9_]+)["']""")


def command_names() -> list[str]:
    return sorted(
        info.name or (info.callback.__name__ if info.callback else "")
        for info in app.registered_commands
    )


def test_every_command_is_in_the_playbook_and_readme() -> None:
    names = command_names()
    assert set(names) == {
        "recover",
        "history",
        "test",
        "approve",
        "disable",
        "enable",
        "status",
        "metrics",
        "watch",
        "serve",
        "check",
        "demo",
    }
    for name in names:
        assert f"recovery {name}" in PLAYBOOK, name
        assert f"recovery {name}" in README, name


def test_every_command_group_is_in_the_playbook_and_readme() -> None:
    groups = {
        str(group.typer_instance.info.name): [
            c.name for c in group.typer_instance.registered_commands
        ]
        for group in app.registered_groups
        if group.typer_instance
    }
    assert groups == {"state": ["migrate", "import", "export"], "config": ["check", "schema"]}
    for name, commands in groups.items():
        for command in commands:
            assert f"recovery {name} {command}" in PLAYBOOK, command
            assert f"recovery {name} {command}" in README, command


@pytest.mark.parametrize("code", list(ExitCode), ids=[c.name for c in ExitCode])
def test_every_exit_code_is_in_the_playbook(code: ExitCode) -> None:
    assert re.search(rf"^\| {int(code)} \|", PLAYBOOK, re.M), code


@pytest.mark.parametrize("reason", list(BlockReason), ids=[r.value for r in BlockReason])
def test_every_gate_reason_is_in_the_playbook(reason: BlockReason) -> None:
    assert f"`{reason.value}`" in PLAYBOOK


@pytest.mark.parametrize("state", list(LifeState), ids=[s.value for s in LifeState])
def test_every_lifecycle_state_is_in_the_playbook(state: LifeState) -> None:
    assert f"| `{state.value}` |" in PLAYBOOK


@pytest.mark.parametrize("reason", list(HoldReason), ids=[r.value for r in HoldReason])
def test_every_hold_reason_is_in_the_playbook(reason: HoldReason) -> None:
    assert f"`{reason.value}`" in PLAYBOOK


@pytest.mark.parametrize(
    "name",
    sorted({*ALERT_NAMES.values(), BLAST_RADIUS_ALERT, DATA_LOSS_ALERT, ON_FALLBACK_ALERT}),
)
def test_every_alert_name_is_in_the_playbook(name: str) -> None:
    assert f"`{name}`" in PLAYBOOK


@pytest.mark.parametrize("outcome", list(Outcome), ids=[o.value for o in Outcome])
def test_every_outcome_is_in_the_playbook(outcome: Outcome) -> None:
    assert f"`{outcome.value}`" in PLAYBOOK


@pytest.mark.parametrize("event", [e.value for e in Event])
def test_every_audit_event_is_in_the_playbook(event: str) -> None:
    assert f"`{event}`" in PLAYBOOK


def declared_strategies(kind: str) -> tuple[str, ...]:
    spec = kind_spec(kind)
    return (spec.strategies if spec else None) or ()


@pytest.mark.parametrize(
    ("kind", "strategy"),
    [(k, s) for k in KINDS if is_available(k) for s in declared_strategies(k)],
)
def test_every_strategy_is_in_the_playbook(kind: str, strategy: str) -> None:
    assert f"`{strategy}`" in PLAYBOOK, f"{kind}: {strategy}"


def failure_types() -> list[str]:
    found: set[str] = set()
    for path in [*(ROOT / "handlers").rglob("*.py"), *(ROOT / "recovery_cli").rglob("*.py")]:
        found.update(FAILURE_CALL.findall(path.read_text()))
    return sorted(found)


@pytest.mark.parametrize("failure_type", failure_types())
def test_every_failure_type_in_the_code_is_in_the_playbook(failure_type: str) -> None:
    assert f"`{failure_type}`" in PLAYBOOK


def test_the_playbook_opens_with_triage_then_runbooks_then_reference() -> None:
    prose = re.sub(r"(?ms)^```.*?^```", "", PLAYBOOK)  # a "# comment" in code is no heading
    headings = [line for line in prose.splitlines() if line.startswith(("# ", "## "))]
    assert headings[1] == "## Triage: symptom → command → runbook"
    top = [h for h in headings if h.startswith("# ")]
    assert top == ["# Recovery playbook", "# Runbooks", "# Reference"]
    triage = PLAYBOOK.split("## Triage", 1)[1].split("\n# ", 1)[0]
    for alert in ("RecoveryComponentFailing", "RecoveryFailed", "RecoveryEscalated"):
        assert f"`{alert}`" in triage, alert


def test_benchmark_tables_live_in_benchmarks_md() -> None:
    # the analytics' own median and p90 (times to recover, step durations) are documented in
    # their section; timings of the tool itself are not documented here
    analytics = PLAYBOOK.split("#### Outcome analytics", 1)[1].split("\n### ", 1)[0]
    rest = PLAYBOOK.replace(analytics, "")
    assert "median" not in rest and "p90" not in rest


def test_every_api_route_is_in_the_playbook() -> None:
    from fastapi.routing import APIRoute

    from recovery_cli.alert_receiver import AlertReceiver
    from recovery_cli.api_actions import ApiActions
    from recovery_cli.api_app import Api
    from recovery_cli.api_auth import Authenticator, Gate, RateLimiter
    from recovery_cli.config import ApiConfig
    from recovery_cli.invocation import Session

    gate = Gate(Authenticator(ApiConfig(), {}), RateLimiter(1, 60))
    api = Api(ApiActions(Session()), gate, AlertReceiver("component", 0, "h"))
    routes = [
        (method, route.path)
        for route in api.app.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    ]
    assert len(routes) == 12
    for method, path in routes:
        assert f"`{method} {path}" in PLAYBOOK, (method, path)


def command_options() -> list[tuple[str, str]]:
    import typer.main

    group: Any = typer.main.get_command(app)
    found = [("recovery", o) for p in group.params for o in p.opts if o.startswith("--")]
    for name, command in sorted(group.commands.items()):
        for param in command.params:
            found += [(name, o) for o in param.opts if o.startswith("--") and o != "--help"]
    return found


@pytest.mark.parametrize(("command", "option"), command_options())
def test_every_option_is_in_the_playbook(command: str, option: str) -> None:
    assert f"`{option}" in PLAYBOOK, f"recovery {command} {option}"


def test_every_metric_is_in_the_playbook(tmp_path: Path) -> None:
    from recovery_cli import metrics
    from recovery_cli.config import parse_config
    from recovery_cli.environment import Environment
    from recovery_cli.store import Store

    config = parse_config(
        "version: 1\ncomponents:\n  app:\n    kind: command\n"
        '    settings: {probe: ["true"]}\n    chain: [fix]\n'
        '    strategies: {fix: {params: {command: ["true"]}}}\n',
        "test.yml",
    )
    store = Store(tmp_path / "state", Environment(environ={}))
    families = {f.name for f in metrics.build_registry(config, store).collect()}
    assert "infra_recovery_backend_up" in families
    for name in families:
        assert f"`{name}" in PLAYBOOK, name
