"""How the parser speaks to people: help that names values (``COMPONENT...``, ``DURATION``)
and never a Python type, each command's summary whole in a command list, no path broken at
its hyphens, and a usage error on one line.

typer 0.29 prints ``<list[str]>`` beside every value, cuts a summary at about 45 characters,
breaks ``/var/lib/recovery-cli`` after ``recovery-`` and spreads a usage error over four
lines. ``cli.py`` registers typer's own command and parameter classes, so ``install``
replaces those few methods of them, once, when ``recovery_cli.commands`` is imported."""

from __future__ import annotations

from typing import IO, Any

from typer import _click
from typer._click import _textwrap
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


def _argument_type(self: TyperArgument, ctx: Any) -> str | None:
    return None  # its metavar says what it is


def _argument_name(self: TyperArgument) -> str:
    """``COMPONENT...`` for one that repeats."""
    name = str(self.metavar or (self.name or "").upper())
    return name + "..." if self.nargs != 1 and not name.endswith("...") else name


def _argument_usage(self: TyperArgument) -> str:
    """``COMPONENT`` when required, ``[COMPONENT]...`` when not (typer writes ``{COMPONENT}``)."""
    name = str(self.metavar or (self.name or "").upper()).removesuffix("...")
    shown = name if self.required else f"[{name}]"
    return shown + "..." if self.nargs != 1 else shown


def _option_value(self: TyperOption, ctx: Any) -> str | None:
    """The option's metavar, else its name (``--state-dir STATE_DIR``), never a type."""
    if self.is_flag or self.count:
        return None
    if self.metavar is not None:
        return str(self.metavar)
    name = (self.name or "value").upper()
    return name + "..." if self.nargs != 1 else name


def _whole_summary(self: Any, limit: int = 45) -> str:
    """The first paragraph of the help, whole: the command list wraps it."""
    text = self.short_help or self.help or ""
    return " ".join(text.split("\n\n", 1)[0].split())


class _WholeWords(_textwrap.TextWrapper):
    """Wrap at spaces only: a path or an option name stays one piece."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("break_on_hyphens", False)
        kwargs.setdefault("break_long_words", False)
        super().__init__(*args, **kwargs)


def _one_line_error(self: _click.exceptions.UsageError, file: IO[Any] | None = None) -> None:
    """``Invalid value for '--limit': ... (see: recovery history --help)``, on stderr."""
    where = f" (see: {self.ctx.command_path} --help)" if self.ctx is not None else ""
    _click.echo(f"{self.format_message().rstrip('.')}{where}", file=file, err=True)


def install() -> None:
    TyperArgument.display_type_rich = _argument_type  # type: ignore[method-assign,assignment]
    TyperArgument._rich_display_name = _argument_name  # type: ignore[method-assign]
    TyperArgument._usage_display_name = _argument_usage  # type: ignore[method-assign]
    TyperOption.display_type_rich = _option_value  # type: ignore[method-assign]
    TyperCommand.get_short_help_str = _whole_summary  # type: ignore[method-assign]
    TyperGroup.get_short_help_str = _whole_summary  # type: ignore[method-assign]
    _textwrap.TextWrapper = _WholeWords  # type: ignore[misc]
    _click.exceptions.UsageError.show = _one_line_error  # type: ignore[method-assign]
