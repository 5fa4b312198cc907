"""``recovery recover``: probe, then recover what is unhealthy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from recovery_cli.commands.shared import (
    AsOpt,
    JsonOpt,
    orchestrator,
    session_of,
    trace_records,
    trace_start,
)

if TYPE_CHECKING:
    from recovery_cli.invocation import Session
    from recovery_cli.run_context import RecoverRequest

MAX_PROMPT_TIMEOUT = 3600.0


def recover(
    ctx: typer.Context,
    components: Annotated[
        list[str] | None,
        typer.Argument(help="Components to recover (default: all, in dependency order)."),
    ] = None,
    component: Annotated[
        list[str] | None, typer.Option("--component", "-c", help="A component (repeatable).")
    ] = None,
    strategy: Annotated[
        str | None, typer.Option("--strategy", "-s", help="Run only this strategy.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would run; change nothing.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Approve steps that need approval.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Run the chain even if the component is healthy.")
    ] = False,
    operator: AsOpt = None,
    json_output: JsonOpt = False,
    override_limits: Annotated[
        bool,
        typer.Option(
            "--override-limits",
            help="Break-glass: pass the hourly/daily cap and the cooldown (a person only; "
            "never a disable or a required approval). Needs --reason.",
        ),
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why you override (recorded with your name).")
    ] = None,
    prompt_timeout: Annotated[
        float,
        typer.Option("--prompt-timeout", help="Seconds to wait at the approval prompt."),
    ] = 300.0,
) -> int:
    """Probe, then recover what is unhealthy (what cron runs every minute)."""
    options = RecoverOptions(
        names=tuple((components or []) + (component or [])),
        strategy=strategy,
        dry_run=dry_run,
        yes=yes,
        force=force,
        operator=operator,
        json_output=json_output,
        override_limits=override_limits,
        reason=reason,
        prompt_timeout=prompt_timeout,
    )
    return run(session_of(ctx), options)


@dataclass(frozen=True)
class RecoverOptions:
    names: tuple[str, ...] = ()
    strategy: str | None = None
    dry_run: bool = False
    yes: bool = False
    force: bool = False
    operator: str | None = None
    json_output: bool = False
    override_limits: bool = False
    reason: str | None = None
    prompt_timeout: float = 300.0


def run(session: Session, options: RecoverOptions) -> int:
    from recovery_cli import render
    from recovery_cli.errors import worst

    since = trace_start(session)
    runner = orchestrator(session, read_only=options.dry_run)
    reports = runner.recover(recover_request(session, options))
    for warning in runner.warnings:
        render.err(f"warning: {warning}")
    if options.json_output:
        render.print_json([r.to_json() for r in reports])
    else:
        render.recover_reports(reports)
    trace_records(session, since)
    return int(worst([r.code for r in reports]))


def recover_request(session: Session, options: RecoverOptions) -> RecoverRequest:
    """A person who names themselves (--as) acts as a person, whatever the terminal."""
    from recovery_cli.errors import UsageError
    from recovery_cli.run_context import RecoverRequest

    if options.override_limits and not (options.reason or "").strip():
        raise UsageError("--override-limits needs --reason (it is recorded with your name)")
    if options.reason and not options.override_limits:
        raise UsageError("--reason goes with --override-limits")
    if not 0 < options.prompt_timeout <= MAX_PROMPT_TIMEOUT:
        raise UsageError(f"--prompt-timeout must be above 0 and at most {MAX_PROMPT_TIMEOUT:g}s")
    trigger = "manual" if options.operator else session.env.trigger
    return RecoverRequest(
        options.names,
        options.strategy,
        options.dry_run,
        options.yes,
        options.force,
        options.operator,
        trigger,
        options.reason if options.override_limits else None,
        options.prompt_timeout,
    )
