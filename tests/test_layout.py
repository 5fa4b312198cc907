"""The layout holds: each kind is one package shaped the same way, and every source file is
type-checked exactly once."""

from __future__ import annotations

import ast
import os
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KIND_PACKAGES = sorted(p.parent for p in (ROOT / "handlers").glob("*/kind.py"))


def test_mypy_sees_every_source_file_exactly_once() -> None:
    """mypy walks symlinked directories; listing both handlers/ and recovery_cli/ (which
    links to it) would check each handler file twice, under two module names."""
    files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"]
    seen: list[Path] = []
    for entry in files:
        for directory, _dirs, names in os.walk(ROOT / entry, followlinks=True):
            seen += [Path(directory, n).resolve() for n in names if n.endswith(".py")]
    assert len(seen) == len(set(seen)), sorted({p for p in seen if seen.count(p) > 1})
    sources = {
        p.resolve() for base in ("recovery_cli", "handlers") for p in (ROOT / base).rglob("*.py")
    }
    assert set(seen) == sources


def test_every_kind_package_has_the_same_shape() -> None:
    assert [p.name for p in KIND_PACKAGES] == ["chromadb", "openwebui", "redis", "system"]
    for package in KIND_PACKAGES:
        present = {p.name for p in package.glob("*.py")}
        assert {"__init__.py", "kind.py", "settings.py", "handler.py", "strategies.py"} <= present
        init = ast.parse((package / "__init__.py").read_text())
        assert len(init.body) == 1 and isinstance(init.body[0], ast.Expr), package


def runtime_imports(path: Path) -> set[str]:
    """Modules ``path`` imports when it runs (``if TYPE_CHECKING:`` blocks left out)."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test).endswith("TYPE_CHECKING")
        for child in block.body
        for node in ast.walk(child)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("package", KIND_PACKAGES, ids=lambda p: p.name)
def test_strategies_receive_the_handler_and_never_import_it(package: Path) -> None:
    handler_module = f"recovery_cli.handlers.{package.name}.handler"
    assert handler_module not in runtime_imports(package / "strategies.py")


@pytest.mark.parametrize("package", KIND_PACKAGES, ids=lambda p: p.name)
def test_kind_and_settings_modules_import_no_client_library(package: Path) -> None:
    """The registry and the config check read these two; they must stay light."""
    heavy = {"redis", "chromadb", "httpx", "docker", "psutil"}
    for name in ("kind.py", "settings.py"):
        imported = {m.split(".")[0] for m in runtime_imports(package / name)}
        assert not imported & heavy, (package.name, name, imported & heavy)
        assert not any(
            m.endswith((".handler", ".strategies")) for m in runtime_imports(package / name)
        )
