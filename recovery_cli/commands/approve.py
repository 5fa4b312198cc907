"""``recovery approve``: list pending approvals, or approve or reject one."""

from __future__ import annotations

from typing import Annotated

import typer

from recovery_cli.commands.shared import (
    AsOpt,
    JsonOpt,
    WideOpt,
    orchestrator,
    session_of,
    warn_backend,
)


def approve(
    ctx: typer.Context,
    approval_id: Annotated[
        str | None,
        typer.Argument(metavar="ID", help="Approval id (or a unique prefix of 4+ characters)."),
    ] = None,
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead of approving.")] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", metavar="TEXT", help="Why (required with --reject).")
    ] = None,
    operator: AsOpt = None,
    json_output: JsonOpt = False,
    wide: WideOpt = False,
) -> int:
    """List pending approvals, or approve (or reject) one."""
    from recovery_cli import approvals, render
    from recovery_cli.errors import UsageError

    session = session_of(ctx)
    if approval_id is None:
        if reject:
            raise UsageError("--reject needs an approval ID")
        store = session.store(read_only=True)
        warn_backend(store)
        now = store.now()
        rows = approvals.pending(store.load_state(), now)
        if json_output:
            render.print_json([a.to_json() for a in rows])
        else:
            render.approvals_rows(rows, now, wide)
        return 0
    runner = orchestrator(session)
    if reject:
        if not reason:
            raise UsageError("--reject needs --reason")
        closed = runner.reject(approval_id, operator, reason)
        if json_output:
            render.print_json(closed.to_json())  # as the API answers
        else:
            render.prose(f"rejected {closed.id} ({closed.component}: {closed.strategy})")
        return 0
    report = runner.approve(approval_id, operator)
    if json_output:
        render.print_json([report.to_json()])
    else:
        render.recover_reports([report], wide)
    return int(report.code)
