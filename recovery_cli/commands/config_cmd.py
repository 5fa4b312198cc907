"""``recovery config check [FILE]`` and ``recovery config schema``: the config for people
and editors, without running anything."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recovery_cli.commands.shared import session_of


def check(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(
            metavar="FILE", help="The config to check (default: the one --config finds)."
        ),
    ] = None,
) -> int:
    """Validate a config: every problem as file:line:col: key: message (exit 2), else OK."""
    from recovery_cli import render
    from recovery_cli.config import load_config, resolve_config_path
    from recovery_cli.errors import ConfigError

    session = session_of(ctx)
    target = path or resolve_config_path(session.config_path, session.env.environ)
    try:
        config = load_config(target)
    except ConfigError as exc:
        for problem in exc.problems:
            render.err(problem.located())
        render.err(f"{target}: {len(exc.problems)} problem(s)")
        return 2
    for warning in config.warnings:
        render.err(f"warning: {warning}")
    render.out(f"{target}: OK ({len(config.components)} components)")
    return 0


def schema(ctx: typer.Context) -> int:
    """Print the config's JSON Schema (for editors: yaml-language-server, IDEs)."""
    from recovery_cli import render
    from recovery_cli.config_schema import config_schema

    render.print_json(config_schema())
    return 0
