"""The ``recovery`` command: parse and dispatch. No decisions are made here.

Each subcommand lives in ``recovery_cli/commands/``; ``dispatched`` runs it inside the one
error handler and turns its return value into the exit code."""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from recovery_cli import __version__
from recovery_cli.commands import (
    approve,
    check,
    config_cmd,
    demo,
    disable,
    enable,
    history,
    metrics,
    recover,
    serve,
    state,
    status,
    test,
    watch,
)


def dispatched(command: Callable[..., int]) -> Callable[..., None]:
    """``command`` inside the one error handler, its return value as the exit code, with
    --verbose's account around it (config, state dir, the records it wrote). SIGTERM
    unwinds from here on like Ctrl-C (before, it ends the process as signals do); the
    parser's own errors (a wrong flag, --help, an explicit exit) pass through untouched."""

    @functools.wraps(command)
    def run(**params: Any) -> None:
        from recovery_cli.commands.shared import trace_records, trace_start
        from recovery_cli.errors import Terminated

        signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            since = trace_start(params["ctx"].obj)
            code = command(**params)
            trace_records(params["ctx"].obj, since)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except (Exception, KeyboardInterrupt, Terminated) as exc:
            code = _exit_code_for(exc, params["ctx"].obj)
        raise typer.Exit(code)

    return run


def _exit_code_for(exc: BaseException, session: object) -> int:
    from recovery_cli import render
    from recovery_cli.errors import exit_code_for
    from recovery_cli.invocation import Session

    if isinstance(session, Session):
        return int(exit_code_for(exc, render.err, session.redact, session.keep_traceback))
    return int(exit_code_for(exc, render.err, str, lambda _text: "no log written"))


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    from recovery_cli.errors import Terminated

    raise Terminated


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


app.command()(dispatched(recover.recover))
app.command()(dispatched(history.history))
app.command("test")(dispatched(test.drill))
app.command()(dispatched(approve.approve))
app.command()(dispatched(disable.disable))
app.command()(dispatched(enable.enable))
app.command()(dispatched(status.status))
app.command()(dispatched(metrics.metrics))
app.command()(dispatched(watch.watch))
app.command()(dispatched(serve.serve))
app.command()(dispatched(demo.demo))
app.command(cls=check.PluginCommand)(dispatched(check.check))

state_app = typer.Typer(
    name="state",
    no_args_is_help=True,
    help="The PostgreSQL state backend: schema migrations, trail import and export.",
)
state_app.command("migrate")(dispatched(state.migrate))
state_app.command("import")(dispatched(state.import_))
state_app.command("export")(dispatched(state.export))
app.add_typer(state_app)

config_app = typer.Typer(
    name="config",
    no_args_is_help=True,
    help="The config file: check it (like monit -t), or print its JSON Schema for editors.",
)
config_app.command("check")(dispatched(config_cmd.check))
config_app.command("schema")(dispatched(config_cmd.schema))
app.add_typer(config_app)


def main() -> None:
    app()
