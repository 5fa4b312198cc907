"""What a run does before its command's own work, kept small: the modules it imports, the
commands the parser builds, the validators pydantic builds, the plugin scan it skips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import Workspace, base_config, child_env, command_component

SHIPPED = Path(__file__).parents[2] / "recovery_config.yml"

# Runs ``main()`` as the console script does and reports, on stderr, the modules imported
# and the commands typer built (its builder is counted, not replaced).
RUN = """
import json, sys
import typer.main
built = []
build = typer.main.get_command_from_info
def counted(*args, **kwargs):
    command = build(*args, **kwargs)
    built.append(command.name)
    return command
typer.main.get_command_from_info = counted
sys.argv = ["recovery", *sys.argv[1:]]
from recovery_cli.cli import main
try:
    main()
except SystemExit:
    pass
print("REPORT:" + json.dumps({"modules": sorted(sys.modules), "built": built}), file=sys.stderr)
"""


def run(*args: str, env: dict[str, str] | None = None) -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", RUN, *args],
        capture_output=True,
        text=True,
        env=child_env(env),
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    line = [ln for ln in done.stderr.splitlines() if ln.startswith("REPORT:")][-1]
    report: dict[str, list[str]] = json.loads(line.removeprefix("REPORT:"))
    return report


def status_args(ws: Workspace, config: Path) -> list[str]:
    return ["--config", str(config), "--state-dir", str(ws.state), "status", "--no-probe"]


def test_a_run_builds_only_the_command_it_runs(ws: Workspace) -> None:
    assert run(*status_args(ws, SHIPPED))["built"] == ["status"]
    # a group builds its own commands, and only those
    assert run("--config", str(SHIPPED), "config", "check")["built"] == ["check", "schema"]


def test_help_builds_and_lists_every_command() -> None:
    import typer.main

    from recovery_cli.cli import app

    names = {
        info.name or typer.main.get_command_name(info.callback.__name__)
        for info in app.registered_commands
        if info.callback is not None
    }
    built = run("--help")["built"]
    assert len(names) > 10 and names <= set(built)


def test_help_imports_neither_the_config_nor_pydantic_nor_yaml() -> None:
    modules = set(run("--help")["modules"])
    assert {"typer", "recovery_cli.cli"} <= modules
    assert not modules & {
        "recovery_cli.config",
        "recovery_cli.invocation",
        "pydantic",
        "yaml",
        "rich",
    }


def test_status_no_probe_imports_no_handler_nor_the_orchestrator(ws: Workspace) -> None:
    modules = set(run(*status_args(ws, SHIPPED))["modules"])
    assert "recovery_cli.status" in modules and "recovery_cli.config" in modules
    never = {"recovery_cli.orchestrator", "recovery_cli.chain", "tenacity", "asyncio", "rich"}
    assert not modules & never
    assert not [
        m for m in modules if m.startswith("recovery_cli.handlers.") and m.endswith(".handler")
    ]


def test_loading_the_config_builds_one_validator_for_the_core_models() -> None:
    code = (
        "import sys, pathlib, pydantic\n"
        "from recovery_cli import config\n"
        "config.load_config(pathlib.Path(sys.argv[1]))\n"
        "built = sorted(n for n, v in vars(config).items() if isinstance(v, type)\n"
        "    and issubclass(v, pydantic.BaseModel) and v.__pydantic_complete__)\n"
        "print(','.join(built))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(SHIPPED)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Config"]


@pytest.fixture
def pydantic_plugin(tmp_path: Path) -> dict[str, str]:
    """An installed pydantic plugin (an entry point in group ``pydantic``) that leaves a
    file behind when pydantic loads it; the environment that makes it visible."""
    site = tmp_path / "site"
    info = site / "marker_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: marker-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pydantic]\nmarker = marker_plugin:plugin\n")
    marker = tmp_path / "loaded"
    (site / "marker_plugin.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('loaded')\n"
        "class Plugin:\n"
        "    def new_schema_validator(self, *args, **kwargs):\n"
        "        return None, None, None\n"
        "plugin = Plugin()\n"
    )
    return {"PYTHONPATH": str(site), "MARKER": str(marker)}


def status_with(ws: Workspace, env: dict[str, str]) -> None:
    """``status --no-probe`` on a one-component config, in ``env``; it must succeed."""
    ws.write_config(base_config({"app": command_component(["true"], {"fix": ["true"]})}))
    done = subprocess.run(
        [sys.executable, "-m", "recovery_cli", *status_args(ws, ws.config)],
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_pydantic_plugins_are_not_looked_for(
    ws: Workspace, pydantic_plugin: dict[str, str]
) -> None:
    marker = Path(pydantic_plugin.pop("MARKER"))
    model = "import pydantic\nclass M(pydantic.BaseModel):\n    x: int\nM(x=1)\n"
    control = subprocess.run(
        [sys.executable, "-c", model],
        env=child_env(pydantic_plugin),
        capture_output=True,
        timeout=60,
    )
    assert control.returncode == 0 and marker.exists(), "pydantic finds the plugin"
    marker.unlink()
    status_with(ws, pydantic_plugin)
    assert not marker.exists()


def test_pydantic_disable_plugins_still_decides(
    ws: Workspace, pydantic_plugin: dict[str, str]
) -> None:
    marker = Path(pydantic_plugin.pop("MARKER"))
    status_with(ws, {**pydantic_plugin, "PYDANTIC_DISABLE_PLUGINS": "some-other-plugin"})
    assert marker.exists()
