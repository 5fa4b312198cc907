"""``--verbose`` works the same for every command: the config and state dir in use, then
every audit record the run wrote."""

from __future__ import annotations

import pytest

from tests.support.cli import Workspace, base_config, command_component


@pytest.mark.parametrize(
    "argv",
    [["status"], ["status", "--no-probe"], ["history"], ["metrics"], ["approve"], ["test"]],
    ids=" ".join,
)
def test_verbose_names_the_config_and_the_state_dir(ws: Workspace, argv: list[str]) -> None:
    ws.write_config(base_config({"app": command_component(["true"], {"fix": ["true"]})}))
    result = ws.run("--verbose", *argv)
    assert result.stderr.splitlines()[:2] == [f"config: {ws.config}", f"state dir: {ws.state}"]
    assert ws.run(*argv).stderr == ""  # quiet without --verbose


def test_verbose_test_shows_the_drill_record_it_wrote(ws: Workspace) -> None:
    ws.write_config(base_config({"app": command_component(["true"], {"fix": ["true"]})}))
    result = ws.run("--verbose", "test")
    traced = [line for line in result.stderr.splitlines() if line.startswith("audit ")]
    assert len(traced) == 1 and "event=drill" in traced[0] and "outcome=success" in traced[0]
