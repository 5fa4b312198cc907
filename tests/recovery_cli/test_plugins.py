"""A third-party kind, shipped as its own package with a ``recovery_cli.kinds`` entry point,
is validated, listed and run without touching this project (the pytest/llm/httpie way)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.cli import Workspace, base_config

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "recovery-cli-flagfile"
version = "0.1.0"

[project.entry-points."recovery_cli.kinds"]
flagfile = "recovery_cli_flagfile:KIND"

[tool.setuptools]
packages = ["recovery_cli_flagfile"]
"""

INIT = """\
from recovery_cli.handlers.base import KindSpec

KIND = KindSpec(
    description="a flag file that must exist",
    handler="recovery_cli_flagfile.handler:FlagHandler",
    settings=None,
    strategies=("create_flag",),
    strategy_module="recovery_cli_flagfile.strategies",
)
"""

HANDLER = """\
from pathlib import Path

from recovery_cli.handlers.base import BaseHandler, ProbeResult

from recovery_cli_flagfile import KIND


class FlagHandler(BaseHandler):
    kind = "flagfile"
    spec = KIND

    def probe(self):
        path = Path(self.context.settings["path"])
        if path.exists():
            return ProbeResult.ok(f"{path} is there")
        return ProbeResult.down("flag_missing", f"{path} is missing")
"""

STRATEGIES = """\
from pathlib import Path

from recovery_cli.handlers.base import StrategyResult


def create_flag(handler, ctx):
    Path(handler.context.settings["path"]).touch()
    return StrategyResult.success("flag created")
"""


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin built and installed (a real pip install) into a directory of its own."""
    source = tmp_path_factory.mktemp("plugin-src")
    (source / "pyproject.toml").write_text(PYPROJECT)
    package = source / "recovery_cli_flagfile"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(INIT))
    (package / "handler.py").write_text(textwrap.dedent(HANDLER))
    (package / "strategies.py").write_text(STRATEGIES)
    target = tmp_path_factory.mktemp("plugin-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return target


def flag_config(ws: Workspace, flag: Path, chain: list[str]) -> None:
    component = {"kind": "flagfile", "settings": {"path": str(flag)}, "chain": chain}
    ws.write_config(base_config({"flag": component}))


def test_a_plugin_kind_is_validated_listed_and_run(
    ws: Workspace, tmp_path: Path, plugin_path: Path
) -> None:
    env = {"PYTHONPATH": str(plugin_path)}
    flag = tmp_path / "flag"
    flag_config(ws, flag, ["create_flag"])
    status = ws.run("status", env=env)
    assert (
        status.returncode == 1 and "flagfile" in status.stdout and "flag_missing" in status.stdout
    )
    recovered = ws.run("recover", env=env)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert flag.exists()
    flag_config(ws, flag, ["make_coffee"])
    wrong = ws.run("status", "--no-probe", env=env)
    assert wrong.returncode == 2 and "known: create_flag" in wrong.stderr


def test_without_the_plugin_the_kind_is_unknown(ws: Workspace, tmp_path: Path) -> None:
    flag_config(ws, tmp_path / "flag", ["create_flag"])
    result = ws.run("status", "--no-probe")
    assert result.returncode == 2 and "unknown kind 'flagfile'" in result.stderr
