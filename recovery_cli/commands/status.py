"""``recovery status``: where each component stands with the gates, and why."""

from __future__ import annotations

from typing import Annotated

import typer

from recovery_cli.commands.shared import JsonOpt, WideOpt, session_of, warn_backend, warn_config


def status(
    ctx: typer.Context,
    no_probe: Annotated[
        bool, typer.Option("--no-probe", help="Skip live health checks (state only).")
    ] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show the window arithmetic behind each gate.")
    ] = False,
    json_output: JsonOpt = False,
    wide: WideOpt = False,
) -> int:
    """Per component: health, attempts vs cap, cooldown, disables, degraded modes, approvals."""
    from recovery_cli import render
    from recovery_cli.errors import ExitCode
    from recovery_cli.status import component_status

    session = session_of(ctx)
    warn_config(session)
    store = session.store(read_only=True)
    warn_backend(store)
    rows = component_status(session.config, store, session.read_only_components, not no_probe)
    if json_output:
        render.print_json([r.to_json() for r in rows])
    else:
        render.status_rows(rows, explain, store.now(), wide)
    unhealthy = any(r.health in ("down", "degraded") for r in rows)
    return int(ExitCode.UNHEALTHY if unhealthy else ExitCode.OK)
