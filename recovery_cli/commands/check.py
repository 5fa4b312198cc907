"""``recovery check COMPONENT``: one component as a monitoring plugin (Nagios convention)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from recovery_cli.commands.shared import session_of

if TYPE_CHECKING:
    from recovery_cli.invocation import Session
    from recovery_cli.plugin_check import PluginResult

MAX_TIMEOUT = 3600.0


class PluginCommand(TyperCommand):
    """A wrong flag is UNKNOWN (3) for a plugin, not the CLI's usage error (2), which a
    monitoring system would read as CRITICAL."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except Exception as exc:
            if hasattr(exc, "exit_code") and not isinstance(exc, typer.Exit):
                exc.exit_code = 3
            raise


def check(
    ctx: typer.Context,
    component: Annotated[str, typer.Argument(metavar="COMPONENT", help="The component to check.")],
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            help="Seconds the probe may take (default: the component's probe_timeout_seconds); "
            "past it, UNKNOWN.",
        ),
    ] = None,
) -> int:
    """Check one component as a monitoring plugin: one line with perfdata, exit 0 OK,
    1 WARNING, 2 CRITICAL, 3 UNKNOWN. Writes nothing."""
    from recovery_cli import render
    from recovery_cli.errors import RecoveryError
    from recovery_cli.plugin_check import PluginResult, PluginStatus

    session = session_of(ctx)
    try:
        result = _check(session, component, timeout)
    except RecoveryError as exc:
        result = PluginResult(PluginStatus.UNKNOWN, "; ".join(exc.lines()))
    except Exception as exc:  # the plugin could not tell: never CRITICAL by accident
        result = PluginResult(PluginStatus.UNKNOWN, f"internal error: {type(exc).__name__}")
    render.out(result.line())
    return int(result.status)


def _check(session: Session, name: str, timeout: float | None) -> PluginResult:
    from recovery_cli import policy
    from recovery_cli.errors import UsageError
    from recovery_cli.handler_calls import Components
    from recovery_cli.handlers.util import format_ts
    from recovery_cli.lifecycle import Life
    from recovery_cli.plugin_check import check_result

    if timeout is not None and not 0 < timeout <= MAX_TIMEOUT:
        raise UsageError(f"--timeout must be above 0 and at most {MAX_TIMEOUT:g} seconds")
    config = session.config
    if name not in config.components:
        raise UsageError(f"unknown component {name!r} (configured: {', '.join(config.components)})")
    if timeout is not None:
        config = _with_probe_timeout(config, name, timeout)
    components = Components(config, session.env, session.state_dir, read_only=True)
    started = time.monotonic()
    probe = components.probe(name)
    seconds = time.monotonic() - started
    store = session.store(read_only=True)
    state, now = store.load_state(), store.now()
    window = store.window(name, config.hourly_cap(name), config.cooldown(name))
    disabled = policy.disabled_entry(state.disabled, name, now)
    life = Life.from_json(state.components.get(name))
    until = format_ts(float(disabled.until)) if disabled else None
    return check_result(name, probe, seconds, window, str(life.state), until)


def _with_probe_timeout(config: Any, name: str, seconds: float) -> Any:
    component = config.components[name].model_copy(update={"probe_timeout_seconds": seconds})
    defaults = config.defaults.model_copy(update={"probe_timeout_seconds": seconds})
    components = {**config.components, name: component}
    return config.model_copy(update={"components": components, "defaults": defaults})
