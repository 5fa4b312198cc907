"""``recovery serve``: the HTTP API alone (``watch --listen`` serves it beside the loop)."""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from recovery_cli.commands.shared import (
    InsecureOpt,
    LogFormatOpt,
    event_log,
    session_of,
    start_api,
    warn_config,
)

if TYPE_CHECKING:
    from recovery_cli.api_running import RunningApi
    from recovery_cli.invocation import Session
    from recovery_cli.watch import EventLog

NAP_SECONDS = 0.2


def serve(
    ctx: typer.Context,
    listen: Annotated[
        str,
        typer.Option(
            "--listen", metavar="ADDRESS", help="HOST:PORT or unix:/PATH to serve the HTTP API on."
        ),
    ] = "127.0.0.1:9464",
    insecure: InsecureOpt = False,
    log_format: LogFormatOpt = "text",
) -> int:
    """Serve the HTTP API (status, history, approvals, recoveries, Alertmanager receiver)."""
    from recovery_cli.errors import ExitCode, Terminated

    log = event_log(log_format, "serve")
    session = session_of(ctx)
    warn_config(session)
    api = start_api(session, listen, insecure, log)
    reload_asked: list[bool] = []

    def ask_reload(signum: int, frame: FrameType | None) -> None:
        reload_asked.append(True)

    previous = signal.signal(signal.SIGHUP, ask_reload)
    try:
        while api.server.alive:
            if reload_asked:
                reload_asked.clear()
                _reload(session, api, log)
            time.sleep(NAP_SECONDS)
        log.note("the API server stopped")
        return int(ExitCode.INTERNAL)
    except Terminated:
        log.note("stopping on SIGTERM")
        return 0
    finally:
        signal.signal(signal.SIGHUP, previous)
        api.stop()


def _reload(session: Session, api: RunningApi, log: EventLog) -> None:
    from recovery_cli.errors import RecoveryError

    try:
        session.reload()
    except RecoveryError as exc:
        log.note(f"config reload refused, the old one is kept: {'; '.join(exc.lines())}")
        return
    refused = api.reload()
    if refused:
        log.note(f"API tokens not reloaded, the old ones are kept: {refused}")
        return
    log.note("config reloaded")
