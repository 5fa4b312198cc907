"""``recovery disable``: suspend automatic recovery of a component for a while."""

from __future__ import annotations

from typing import Annotated

import typer

from recovery_cli.commands.shared import AsOpt, session_of


def disable(
    ctx: typer.Context,
    component: Annotated[str, typer.Argument(metavar="COMPONENT", help="Component to suspend.")],
    for_: Annotated[str, typer.Option("--for", help="How long, e.g. 30m, 2h, 1d.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit trail).")],
    operator: AsOpt = None,
) -> int:
    """Suspend automatic recovery of a component until the time runs out."""
    from recovery_cli import controls, render
    from recovery_cli.handlers.util import format_ts
    from recovery_cli.history import parse_duration

    session = session_of(ctx)
    seconds = parse_duration(for_)
    until = controls.disable(
        session.config, session.store(), component, seconds, reason, session.env.operator(operator)
    )
    render.out(f"{component}: automatic recovery disabled until {format_ts(until)}")
    return 0
