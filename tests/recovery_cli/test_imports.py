"""Start-up stays light: heavy client libraries are imported only where used."""

from __future__ import annotations

import subprocess
import sys

from tests.support.cli import Workspace, base_config, command_component

HEAVY = (
    "chromadb",
    "docker",
    "redis",
    "httpx",
    "prometheus_client",
    "psutil",
    "fastapi",
    "starlette",
    "uvicorn",
    "psycopg",
)

PROBE = """
import sys
sys.argv = ["recovery", *sys.argv[1:]]
from recovery_cli.cli import app
try:
    app()
except SystemExit:
    pass
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("HEAVY:" + ",".join(heavy), file=sys.stderr)
"""


def loaded(*args: str) -> list[str]:
    code = PROBE.format(heavy=HEAVY)
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )
    line = [ln for ln in result.stderr.splitlines() if ln.startswith("HEAVY:")][-1]
    return [m for m in line.removeprefix("HEAVY:").split(",") if m]


def test_help_imports_no_heavy_library() -> None:
    assert loaded("--help") == []


def test_status_no_probe_imports_no_heavy_library(ws: Workspace) -> None:
    ws.write_config(base_config({"app": command_component(["true"], {"fix": ["true"]})}))
    assert (
        loaded("--config", str(ws.config), "--state-dir", str(ws.state), "status", "--no-probe")
        == []
    )


def test_status_no_probe_on_shipped_config_imports_no_heavy_library(ws: Workspace) -> None:
    from pathlib import Path

    shipped = Path(__file__).parents[2] / "recovery_config.yml"
    assert (
        loaded("--config", str(shipped), "--state-dir", str(ws.state), "status", "--no-probe") == []
    )


def test_watch_and_serve_help_import_no_web_framework() -> None:
    assert loaded("watch", "--help") == []
    assert loaded("serve", "--help") == []
