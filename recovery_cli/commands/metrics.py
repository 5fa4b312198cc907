"""``recovery metrics``: Prometheus metrics from the audit trail and the state file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recovery_cli.commands.shared import check_writable, session_of, writing


def metrics(
    ctx: typer.Context,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of the Prometheus text.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write atomically to this file (textfile collector).",
        ),
    ] = None,
) -> int:
    """Prometheus metrics derived from the audit trail."""
    from recovery_cli import metrics as prom
    from recovery_cli import render

    if output is not None:
        check_writable("--output", output)
    session = session_of(ctx)
    registry = prom.build_registry(session.config, session.store(read_only=True))
    if json_output:
        render.print_json(prom.as_json(registry))
    elif output is not None:
        with writing("--output", output):
            prom.write_atomically(output, prom.exposition(registry), session.state_dir)
    else:
        render.out(prom.exposition(registry))
    return 0
