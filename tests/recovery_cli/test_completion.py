"""Shell completion through the installed ``recovery`` script, as bash and zsh ask for it:
command names, option names, and the config's component names wherever a command takes one."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.support.cli import Workspace, base_config, child_env, command_component

RECOVERY = str(Path(sys.executable).with_name("recovery"))  # the installed console script
NAMES = ("api", "app", "worker")


def complete(
    words: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> list[str]:
    """What bash would offer for the last word of ``words`` (``"recovery sta"``)."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    extra = {"_RECOVERY_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    done = subprocess.run(
        [RECOVERY],
        capture_output=True,
        text=True,
        env=child_env({**extra, **(env or {})}),
        cwd=cwd,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.fixture
def three(ws: Workspace) -> Workspace:
    ws.write_config(
        base_config({name: command_component(["true"], {"fix": ["true"]}) for name in NAMES})
    )
    return ws


def test_show_completion_prints_a_bash_script_for_recovery() -> None:
    done = subprocess.run(
        [RECOVERY, "--show-completion", "bash"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "_RECOVERY_COMPLETE=complete_bash" in done.stdout
    assert "complete -o default -F _recovery_completion recovery" in done.stdout


def test_help_lists_the_completion_options() -> None:
    done = subprocess.run(
        [RECOVERY, "--help"], capture_output=True, text=True, env=child_env(), timeout=60
    )
    assert "--install-completion" in done.stdout and "--show-completion" in done.stdout


def test_command_names_complete() -> None:
    assert complete("recovery sta") == ["status", "state"]
    assert complete("recovery rec") == ["recover"]
    assert complete("recovery state ") == ["migrate", "import", "export"]


def test_option_names_complete() -> None:
    assert complete("recovery recover --comp") == ["--component"]


def test_component_names_complete_from_the_config_named_by_the_option(three: Workspace) -> None:
    config = str(three.config)
    assert complete(f"recovery --config {config} recover a") == ["api", "app"]
    assert complete(f"recovery --config {config} recover api w") == ["worker"]
    assert complete(f"recovery --config {config} history -c w") == ["worker"]
    assert complete(f"recovery --config {config} check ") == list(NAMES)


def test_component_names_complete_from_the_environment_and_the_working_directory(
    three: Workspace,
) -> None:
    assert complete("recovery disable ", env={"RECOVERY_CONFIG": str(three.config)}) == list(NAMES)
    assert complete("recovery enable w", cwd=three.root) == ["worker"]  # ./recovery_config.yml


def test_a_config_with_a_problem_still_completes_its_names(three: Workspace) -> None:
    text = three.config.read_text().replace("version: 1", "version: 1\nunknown_key: true")
    three.config.write_text(text)
    assert complete(f"recovery --config {three.config} watch ") == list(NAMES)


def test_no_config_completes_no_names(tmp_path: Path) -> None:
    assert complete("recovery check ", cwd=tmp_path) == []
    assert complete(f"recovery --config {tmp_path / 'missing.yml'} check ") == []
    (tmp_path / "list.yml").write_text("- not a mapping\n")
    assert complete(f"recovery --config {tmp_path / 'list.yml'} check ") == []


def test_zsh_gets_the_component_names_too(three: Workspace) -> None:
    done = subprocess.run(
        [RECOVERY],
        capture_output=True,
        text=True,
        env=child_env(
            {
                "_RECOVERY_COMPLETE": "complete_zsh",
                "_TYPER_COMPLETE_ARGS": f"recovery --config {three.config} recover ",
            }
        ),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert all(f'"{name}"' in done.stdout for name in NAMES), done.stdout
