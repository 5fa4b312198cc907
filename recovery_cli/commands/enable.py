"""``recovery enable``: lift a ``disable`` early."""

from __future__ import annotations

from typing import Annotated

import typer

from recovery_cli.commands.shared import AsOpt, session_of


def enable(
    ctx: typer.Context,
    component: Annotated[str, typer.Argument(metavar="COMPONENT", help="Component to resume.")],
    operator: AsOpt = None,
) -> int:
    """Lift a `disable` early."""
    from recovery_cli import controls, render

    session = session_of(ctx)
    lifted = controls.enable(
        session.config, session.store(), component, session.env.operator(operator)
    )
    render.prose(f"{component}: enabled" if lifted else f"{component}: was not disabled")
    return 0
