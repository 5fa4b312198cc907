"""``recovery demo``: a lab of real services, broken and recovered in front of the user."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from recovery_cli.demo.lab import Lab


def demo(
    ctx: typer.Context,
    keep: Annotated[
        bool,
        typer.Option("--keep", help="Leave the lab (services, config, state dir) for exploring."),
    ] = False,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            metavar="DIR",
            help="Build the lab here (a new or empty directory) instead of a temporary one.",
        ),
    ] = None,
    clean: Annotated[
        Path | None,
        typer.Option(
            "--clean",
            metavar="DIR",
            help="Remove a lab left by --keep: stop its services, unmount its disk, delete it.",
        ),
    ] = None,
) -> int:
    """Start real services in a lab directory, break them (kill -9, a frozen process, a full
    disk, a step that needs approval), recover each through the real gates and audit trail,
    then clean up. Touches nothing outside the lab and its loopback ports."""
    from recovery_cli import render
    from recovery_cli.demo.lab import Lab, LabError
    from recovery_cli.demo.scenes import play
    from recovery_cli.errors import UsageError

    if clean is not None:
        _clean(clean)
        render.out(f"removed the lab at {clean}")
        return 0
    started = time.monotonic()
    root = directory if directory is not None else Path(tempfile.mkdtemp(prefix="recovery-demo-"))
    lab = Lab(root)
    try:
        lab.create()
        lab.start()
    except LabError as exc:
        lab.remove()
        raise UsageError(f"demo: {exc}") from None
    try:
        runs = play(lab, render.out)
    finally:
        if not keep:
            lab.remove()
    healthy = [run.code for run in runs if run.argv == ["status"]][-1:] == [0]
    render.out(_epilogue(lab, keep, time.monotonic() - started))
    return 0 if healthy else 1


def _clean(root: Path) -> None:
    import os

    from recovery_cli.demo.lab import Lab
    from recovery_cli.errors import UsageError

    if not (root / "lab.json").is_file() or not (root / "recovery_config.yml").is_file():
        raise UsageError(f"--clean: {root} is not a lab made by recovery demo")
    lab = Lab(root.resolve(), scratch_mounted=os.path.ismount(root / "scratch"), owned=True)
    lab.remove()


def _epilogue(lab: Lab, keep: bool, seconds: float) -> str:
    lines = [f"\n== Done in {seconds:.1f} s"]
    if keep:
        lines += [
            "  The lab is still running. Explore it:",
            f"    export RECOVERY_CONFIG={lab.config_path} RECOVERY_STATE_DIR={lab.state_dir}",
            "    recovery status; recovery history --last 1h; recovery recover web --dry-run",
            "  Remove it when done (stops its services, unmounts its scratch disk):",
            f"    recovery demo --clean {lab.root}",
        ]
    else:
        lines.append("  The lab is gone: its services stopped, its directory removed.")
    lines += [
        "  Point the tool at real services: copy recovery_config.yml from the project, set each",
        "  component's url/unit, then `recovery config check` and `recovery test` (the drill).",
        "  Run it from cron (`recovery recover` every minute), or as `recovery watch`",
        "  under systemd.",
    ]
    return "\n".join(lines)
