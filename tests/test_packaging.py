"""The wheel holds every package: built, installed into a fresh virtualenv, and every
registry target imported from there (a packaging miss shows as "handler not available")."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOT_SOURCE = (".git", ".venv*", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis")

IMPORT_EVERY_TARGET = textwrap.dedent(
    """
    import importlib, json, pkgutil
    import recovery_cli
    from recovery_cli.registry import KINDS, config_validator, handler_class, kind_spec

    modules = [m.name for m in pkgutil.walk_packages(recovery_cli.__path__, "recovery_cli.")]
    for name in modules:
        if not name.endswith("__main__"):  # that one runs the CLI
            importlib.import_module(name)
    strategies = {}
    for kind in KINDS:
        spec = kind_spec(kind)
        handler_class(kind)
        config_validator(kind)
        if spec.strategies is not None:
            module = importlib.import_module(spec.strategy_module)
            strategies[kind] = [callable(getattr(module, s)) for s in spec.strategies]
    print(json.dumps({"file": recovery_cli.__file__, "modules": modules, "strategies": strategies}))
    """
)


def source_modules() -> set[str]:
    """Every module and package of the source tree, by the name it has once installed."""
    names = set()
    for base, prefix in (
        (ROOT / "recovery_cli", ("recovery_cli",)),
        (ROOT / "handlers", ("recovery_cli", "handlers")),
    ):
        for path in base.rglob("*.py"):
            parts = path.relative_to(base).with_suffix("").parts
            if base.name == "recovery_cli" and parts[0] == "handlers":
                continue  # the symlink to handlers/, counted from there
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            if prefix + parts != ("recovery_cli",):
                names.add(".".join(prefix + parts))
    return names


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with only the wheel installed; third-party libraries come from this
    interpreter's site-packages (listed by path, so its editable install is not seen)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy: a build leaves build/ and *.egg-info where it runs
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE), symlinks=True)
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"),
            *("-w", str(root / "dist"), str(source)),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next((root / "dist").glob("recovery_cli-*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site, str(wheel)],
        check=True,
        capture_output=True,
    )
    return python


def test_every_registry_target_imports_from_the_installed_wheel(
    fresh_python: Path, tmp_path: Path
) -> None:
    done = subprocess.run(
        [str(fresh_python), "-c", IMPORT_EVERY_TARGET],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert not found["file"].startswith(str(ROOT)), found["file"]
    assert set(found["modules"]) == source_modules()
    assert set(found["strategies"]) == {"system", "redis", "chromadb", "openwebui"}
    assert all(all(ok) for ok in found["strategies"].values()), found["strategies"]


def test_the_installed_command_runs(fresh_python: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(fresh_python), "-m", "recovery_cli", "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "recovery 0.1.0")
