"""``recovery disable``: suspend automatic recovery of a component for a while."""

from __future__ import annotations

from typing import Annotated

import typer

from recovery_cli.commands.shared import AsOpt, session_of


def disable(
    ctx: typer.Context,
    component: Annotated[str, typer.Argument(metavar="COMPONENT", help="Component to suspend.")],
    for_: Annotated[
        str, typer.Option("--for", metavar="DURATION", help="How long, e.g. 30m, 2h, 1d.")
    ],
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why (recorded in the audit trail).")
    ],
    operator: AsOpt = None,
) -> int:
    """Suspend automatic recovery of a component until the time runs out."""
    from recovery_cli import controls, render
    from recovery_cli.history import parse_duration

    session = session_of(ctx)
    seconds = parse_duration(for_)
    store = session.store()
    until = controls.disable(
        session.config, store, component, seconds, reason, session.env.operator(operator)
    )
    render.disabled(component, until, store.now())
    return 0
