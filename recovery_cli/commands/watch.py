"""``recovery watch``: recover continuously, each component on its own probe interval."""

from __future__ import annotations

from typing import Annotated

import typer

from recovery_cli.commands.shared import (
    InsecureOpt,
    ListenOpt,
    LogFormatOpt,
    event_log,
    session_of,
    start_api,
    warn_config,
)

MAX_INTERVAL = 3600.0


def watch(
    ctx: typer.Context,
    components: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="COMPONENT", help="Components to watch (default: all).", show_default=False
        ),
    ] = None,
    interval: Annotated[
        float | None,
        typer.Option(
            "--interval",
            metavar="SECONDS",
            help="Seconds between probes of each component, for all of them (default: "
            "each component's probe_interval_seconds).",
        ),
    ] = None,
    cycles: Annotated[
        int | None,
        typer.Option(
            "--cycles", metavar="N", help="Stop after this many runs (default: until SIGTERM)."
        ),
    ] = None,
    log_format: LogFormatOpt = "text",
    listen: ListenOpt = None,
    insecure: InsecureOpt = False,
) -> int:
    """Probe and recover continuously (under systemd: Type=notify); SIGHUP reloads the config."""
    from recovery_cli.errors import UsageError
    from recovery_cli.sd_notify import Notifier
    from recovery_cli.watch import Watcher

    if interval is not None and not 0 < interval <= MAX_INTERVAL:
        raise UsageError(f"--interval must be above 0 and at most {MAX_INTERVAL:g} seconds")
    if cycles is not None and cycles < 1:
        raise UsageError("--cycles must be at least 1")
    log = event_log(log_format, "watch")
    session = session_of(ctx)
    names = list(components or [])
    unknown = [n for n in names if n not in session.config.components]
    if unknown:
        known = ", ".join(session.config.components)
        raise UsageError(f"unknown component {unknown[0]!r} (configured: {known})")
    warn_config(session)
    api = start_api(session, listen, insecure, log) if listen else None
    watcher = Watcher(session, names, interval, log, Notifier(session.env.environ), api)
    return watcher.run(cycles)
