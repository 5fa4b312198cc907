"""The ``recovery`` command: parse, call the core, render. No decisions are made here.

Core modules are imported inside each command so that ``recovery --help`` stays light."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from recovery_cli import __version__
from recovery_cli.errors import Terminated, interrupt_exit_code

if TYPE_CHECKING:
    from recovery_cli.invocation import Session

app = typer.Typer(
    name="recovery",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich costs ~50 ms of start-up on every run
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Bring infrastructure back to health: probe, escalate through strategy chains, "
    "respect cooldowns, caps and approvals, and audit everything.",
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AsOpt = Annotated[
    str | None,
    typer.Option("--as", help="Operator name to record (default: $SUDO_USER, else $USER)."),
]


def _version(value: bool) -> None:
    if value:
        print(f"recovery {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Config file (else $RECOVERY_CONFIG, ./recovery_config.yml, "
            "/etc/recovery-cli/recovery_config.yml).",
        ),
    ] = None,
    state_dir: Annotated[
        str | None,
        typer.Option(
            "--state-dir",
            help="State directory (else $RECOVERY_STATE_DIR, the config's state_dir, "
            "/var/lib/recovery-cli).",
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="More detail on stderr.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    from recovery_cli import render
    from recovery_cli.invocation import Session

    session = Session(config_path=config, state_dir_option=state_dir, verbose=verbose)
    render.use_redactor(session.redact)
    ctx.obj = session


def _session(ctx: typer.Context) -> Session:
    session: Session = ctx.obj
    return session


@app.command()
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
) -> None:
    """Probe, then recover what is unhealthy (what cron runs every minute)."""
    from recovery_cli import commands

    options = commands.RecoverOptions(
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
    raise typer.Exit(commands.recover(_session(ctx), options))


@app.command()
def history(
    ctx: typer.Context,
    component: Annotated[str | None, typer.Option("--component", "-c")] = None,
    last: Annotated[
        str | None, typer.Option("--last", help="Window ending now, e.g. 30m, 24h, 7d.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Start: 2026-11-22, 2026-11-22T10:00Z or a duration ago."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="End, same forms as --since.")
    ] = None,
    outcome: Annotated[
        str | None, typer.Option("--outcome", help="success, failed, blocked, started, ...")
    ] = None,
    strategy: Annotated[str | None, typer.Option("--strategy", "-s")] = None,
    event: Annotated[
        str | None, typer.Option("--event", help="attempt, step, blocked, approved, ...")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many records.")] = 50,
    show_stats: Annotated[
        bool, typer.Option("--stats", help="Success rate per component, strategy and failure type.")
    ] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Check the audit hash chain.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Audit records, newest first."""
    from recovery_cli import commands

    raise typer.Exit(
        commands.history(
            _session(ctx),
            component,
            last,
            since,
            until,
            outcome,
            strategy,
            event,
            limit,
            show_stats,
            verify,
            json_output,
        )
    )


@app.command("test")
def drill(
    ctx: typer.Context,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.")] = None,
    live: Annotated[
        bool, typer.Option("--live", help="Also run each chain for real (staging targets only).")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """CI drill: validate the config and every strategy's preconditions; changes nothing."""
    from recovery_cli import commands

    raise typer.Exit(commands.drill(_session(ctx), junit, live, json_output))


@app.command()
def approve(
    ctx: typer.Context,
    approval_id: Annotated[
        str | None,
        typer.Argument(metavar="[ID]", help="Approval id (or a unique prefix of 4+ characters)."),
    ] = None,
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead of approving.")] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (required with --reject).")
    ] = None,
    operator: AsOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """List pending approvals, or approve (or reject) one."""
    from recovery_cli import commands

    raise typer.Exit(
        commands.approve(_session(ctx), approval_id, reject, reason, operator, json_output)
    )


@app.command()
def disable(
    ctx: typer.Context,
    component: Annotated[str, typer.Argument(help="Component to suspend.")],
    for_: Annotated[str, typer.Option("--for", help="How long, e.g. 30m, 2h, 1d.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit trail).")],
    operator: AsOpt = None,
) -> None:
    """Suspend automatic recovery of a component until the time runs out."""
    from recovery_cli import commands

    raise typer.Exit(commands.disable(_session(ctx), component, for_, reason, operator))


@app.command()
def enable(
    ctx: typer.Context,
    component: Annotated[str, typer.Argument(help="Component to resume.")],
    operator: AsOpt = None,
) -> None:
    """Lift a `disable` early."""
    from recovery_cli import commands

    raise typer.Exit(commands.enable(_session(ctx), component, operator))


@app.command()
def status(
    ctx: typer.Context,
    no_probe: Annotated[
        bool, typer.Option("--no-probe", help="Skip live health checks (state only).")
    ] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show the window arithmetic behind each gate.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Per component: health, attempts vs cap, cooldown, disables, degraded modes, approvals."""
    from recovery_cli import commands

    raise typer.Exit(commands.status(_session(ctx), no_probe, explain, json_output))


@app.command()
def metrics(
    ctx: typer.Context,
    json_output: JsonOpt = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write atomically to this file (textfile collector)."),
    ] = None,
) -> None:
    """Prometheus metrics derived from the audit trail."""
    from recovery_cli import commands

    raise typer.Exit(commands.metrics(_session(ctx), json_output, output))


def main() -> None:
    # SIGTERM unwinds like Ctrl-C, so the running step's commands are ended and recorded
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        app()
    except (KeyboardInterrupt, Terminated) as exc:
        raise SystemExit(int(interrupt_exit_code(exc))) from None


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated
