"""The ``recovery`` command: parse and dispatch. No decisions are made here.

Each subcommand lives in ``recovery_cli/commands/``; ``dispatched`` runs it inside the one
error handler and turns its return value into the exit code. ``main`` builds the parser
lazily (``command_tree``: only the subcommand a run uses) and, when the shell asks for
completions, completes component names from the config."""

from __future__ import annotations

import copy
import functools
import os
import signal
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
import typer.main
from typer._click.shell_completion import CompletionItem
from typer.core import TyperGroup
from typer.models import CommandInfo, TyperInfo

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
    add_completion=True,  # --install-completion, --show-completion (typer's, no extra import)
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
            metavar="FILE",
            help="Config file (else $RECOVERY_CONFIG, ./recovery_config.yml, "
            "/etc/recovery-cli/recovery_config.yml).",
        ),
    ] = None,
    state_dir: Annotated[
        str | None,
        typer.Option(
            "--state-dir",
            metavar="DIR",
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
    """The console script: ``app`` as typer would run it, one subcommand built."""
    command = command_tree(app)
    if _completing(os.environ):
        _complete_component_names(command)
    command()


def command_tree(typer_app: typer.Typer) -> TyperGroup:
    """typer's command group of ``typer_app``, each subcommand built when first looked up:
    typer builds every command's parameters from its signature, ~20 ms a run for all of
    them, and a run uses one (``--help`` and completion still build all, to list them)."""
    shell = copy.copy(typer_app)
    shell.registered_commands, shell.registered_groups = [], []
    group = typer.main.get_command(shell)
    assert isinstance(group, TyperGroup)
    group.commands = LazyCommands(typer_app)
    return group


class LazyCommands(MutableMapping[str, Any]):
    """A group's subcommands by name, in the order registered; each built on first use."""

    def __init__(self, typer_app: typer.Typer) -> None:
        self._build: dict[str, Callable[[], Any]] = {}
        self._built: dict[str, Any] = {}
        for info in typer_app.registered_commands:
            assert info.callback is not None
            name = info.name or typer.main.get_command_name(info.callback.__name__)
            self._build[name] = functools.partial(_build_command, typer_app, info)
        for group_info in typer_app.registered_groups:
            group_name = typer.main.solve_typer_info_defaults(group_info).name
            assert isinstance(group_name, str)
            self._build[group_name] = functools.partial(_build_group, typer_app, group_info)

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            self._built[name] = self._build[name]()
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._build.setdefault(name, lambda: command)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._build[name]
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._build)

    def __len__(self) -> int:
        return len(self._build)


def _build_command(typer_app: typer.Typer, info: CommandInfo) -> Any:
    return typer.main.get_command_from_info(
        info,
        pretty_exceptions_short=typer_app.pretty_exceptions_short,
        rich_markup_mode=typer_app.rich_markup_mode,
    )


def _build_group(typer_app: typer.Typer, info: TyperInfo) -> Any:
    return typer.main.get_group_from_info(
        info,
        pretty_exceptions_short=typer_app.pretty_exceptions_short,
        suggest_commands=typer_app.suggest_commands,
        rich_markup_mode=typer_app.rich_markup_mode,
    )


# the parameters that name a component: shell completion offers the config's components
COMPONENT_PARAMETERS = frozenset({"component", "components"})


def _completing(environ: Mapping[str, str]) -> bool:
    """Whether the shell asks for completions (``_RECOVERY_COMPLETE=complete_bash``, the
    variable named after the program): only then is completion set up beyond typer's."""
    return any(name.startswith("_") and name.endswith("_COMPLETE") for name in environ)


def _complete_component_names(command: Any) -> None:
    """Every parameter that takes a component completes from the config's component names
    (typer's ``autocompletion`` hook, set once here instead of in each declaration)."""
    for param in command.params:
        if param.name in COMPONENT_PARAMETERS:
            param._custom_shell_complete = component_names
    for subcommand in getattr(command, "commands", {}).values():
        _complete_component_names(subcommand)


def component_names(ctx: typer.Context, param: Any, incomplete: str) -> list[CompletionItem]:
    """The config's components that start with ``incomplete`` (the config as --config,
    $RECOVERY_CONFIG or the default paths name it; none when it cannot be read)."""
    from recovery_cli.config import declared_components

    names = declared_components(ctx.find_root().params.get("config"), os.environ)
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]
