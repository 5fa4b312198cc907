"""``recovery recover``: probe, then recover what is unhealthy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from recovery_cli.commands.shared import (
    AsOpt,
    JsonOpt,
    WideOpt,
    orchestrator,
    session_of,
    warn_config,
)

if TYPE_CHECKING:
    from recovery_cli.invocation import Session
    from recovery_cli.run_context import RecoverRequest

MAX_PROMPT_TIMEOUT = 3600.0


def recover(
    ctx: typer.Context,
    components: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="COMPONENT",
            help="Components to recover (default: all, in dependency order).",
            show_default=False,
        ),
    ] = None,
    component: Annotated[
        list[str] | None,
        typer.Option("--component", "-c", metavar="NAME", help="A component (repeatable)."),
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option("--strategy", "-s", metavar="NAME", help="Run only this strategy."),
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
    wide: WideOpt = False,
    override_limits: Annotated[
        bool,
        typer.Option(
            "--override-limits",
            help="Break-glass: pass the hourly/daily cap and the cooldown (a person only; "
            "never a disable or a required approval). Needs --reason.",
        ),
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason", metavar="TEXT", help="Why you override (recorded with your name)."
        ),
    ] = None,
    prompt_timeout: Annotated[
        float,
        typer.Option(
            "--prompt-timeout", metavar="SECONDS", help="Seconds to wait at the approval prompt."
        ),
    ] = 300.0,
    override_conflicts: Annotated[
        bool,
        typer.Option(
            "--override-conflicts",
            help="With --strategy restore_config: also put back keys a person changed since "
            "(still needs its approval).",
        ),
    ] = False,
) -> int:
    """Probe, then recover what is unhealthy (what cron runs every minute)."""
    from recovery_cli.run_context import RecoverRequest

    refuse_unpaired(override_limits, reason, prompt_timeout)
    if override_conflicts and not strategy:
        from recovery_cli.errors import UsageError

        raise UsageError("--override-conflicts needs --strategy (e.g. --strategy restore_config)")
    session = session_of(ctx)
    request = RecoverRequest(
        components=tuple((components or []) + (component or [])),
        strategy=strategy,
        dry_run=dry_run,
        yes=yes,
        force=force,
        operator=operator,
        # a person who names themselves (--as) acts as a person, whatever the terminal
        trigger="manual" if operator else session.env.trigger,
        override_reason=reason if override_limits else None,
        prompt_timeout=prompt_timeout,
        override_conflicts=override_conflicts,
    )
    if dry_run:
        return run(session, request, json_output, wide)
    return run_with_heartbeat(session, request, json_output, wide)


def refuse_unpaired(override_limits: bool, reason: str | None, prompt_timeout: float) -> None:
    """A break-glass run needs its reason, a reason needs the break-glass flag, and the
    prompt waits a bounded time."""
    from recovery_cli.errors import UsageError

    if override_limits and not (reason or "").strip():
        raise UsageError("--override-limits needs --reason (it is recorded with your name)")
    if reason and not override_limits:
        raise UsageError("--reason goes with --override-limits")
    if not 0 < prompt_timeout <= MAX_PROMPT_TIMEOUT:
        raise UsageError(f"--prompt-timeout must be above 0 and at most {MAX_PROMPT_TIMEOUT:g}s")


def run_with_heartbeat(
    session: Session, request: RecoverRequest, json_output: bool, wide: bool
) -> int:
    """``run`` between the heartbeat's ``/start`` and the ping of its exit code (when
    ``alerting.heartbeat_url`` is set); the code, an error's included, is what it was."""
    from recovery_cli import heartbeat, render
    from recovery_cli.errors import code_for

    beat = heartbeat.for_run(session.config.alerting, session.env.environ, render.err, "recover")
    if not beat.enabled:
        return run(session, request, json_output, wide)
    beat.start()
    try:
        code = run(session, request, json_output, wide)
    except BaseException as exc:
        beat.finish(code_for(exc))
        raise
    beat.finish(code)
    return code


def run(session: Session, request: RecoverRequest, json_output: bool, wide: bool = False) -> int:
    from recovery_cli import render
    from recovery_cli.errors import worst

    warn_config(session)
    runner = orchestrator(session, read_only=request.dry_run)
    reports = runner.recover(request)
    for warning in runner.warnings:
        render.err(f"warning: {warning}")
    if json_output:
        render.print_json([r.to_json() for r in reports])
    else:
        render.recover_reports(reports, wide)
    return int(worst([r.code for r in reports]))
