"""``recovery config check`` and ``recovery config schema``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support.cli import Workspace

SHIPPED = Path(__file__).parents[3] / "recovery_config.yml"


def test_the_shipped_config_checks_ok(ws: Workspace) -> None:
    result = ws.run("config", "check", str(SHIPPED))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{SHIPPED}: OK (4 components)"


def test_every_problem_is_file_line_column_key_message(ws: Workspace, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "version: 1\n"
        "components:\n"
        "  redis:\n"
        "    kind: redis\n"
        "    chain: [reconnect]\n"
        "    cooldown_seconds: -5\n"
        "    colour: blue\n"
    )
    result = ws.run("config", "check", str(bad))

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert (
        f"{bad}:6:5: components.redis.cooldown_seconds: Input should be greater than or equal to 0"
        in lines
    )
    assert any(ln.startswith(f"{bad}:7:5: components.redis.colour:") for ln in lines)
    assert lines[-1] == f"{bad}: 2 problem(s)"
    assert result.stdout == ""


def test_a_yaml_syntax_error_has_its_column(ws: Workspace, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("version: 1\ncomponents: [unclosed\n")
    result = ws.run("config", "check", str(bad))
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{bad}:") and "YAML syntax error" in first
    assert first.split(":")[2].isdigit()  # the column


def test_the_schema_accepts_the_shipped_config_and_refuses_an_unknown_key(ws: Workspace) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    result = ws.run("config", "schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    shipped = yaml.safe_load(SHIPPED.read_text())

    jsonschema.validate(shipped, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**shipped, "colour": "blue"}, schema)
    assert schema["$schema"].startswith("https://json-schema.org/")


def test_fleet_settings_on_the_file_backend_are_warned_about(ws: Workspace, tmp_path: Path) -> None:
    config = tmp_path / "c.yml"
    config.write_text(
        "version: 1\nfleet: {max_concurrent_actions: 1}\ncomponents:\n  app:\n"
        '    kind: command\n    scope: fleet\n    settings: {probe: ["true"]}\n'
        '    chain: [fix]\n    strategies: {fix: {params: {command: ["true"]}}}\n'
    )
    result = ws.run("config", "check", str(config))
    assert result.returncode == 0
    assert "components.app.scope: scope: fleet shares nothing on the file backend" in result.stderr
    assert "fleet.max_concurrent_actions: has no effect on the file backend" in result.stderr
