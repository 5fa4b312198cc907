"""What several commands share: common options, the session, the orchestrator, --verbose."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from pathlib import Path

    from recovery_cli.api_running import RunningApi
    from recovery_cli.invocation import Session
    from recovery_cli.orchestrator import Orchestrator
    from recovery_cli.store import Store
    from recovery_cli.watch import EventLog

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
WideOpt = Annotated[
    bool,
    typer.Option(
        "--wide",
        help="On a terminal, show every column in full, even past its width (piped "
        "output always has every column).",
    ),
]
ListenOpt = Annotated[
    str | None,
    typer.Option(
        "--listen",
        metavar="ADDRESS",
        help="Serve the HTTP API on HOST:PORT or unix:/PATH (tokens and TLS from the "
        "config's api section).",
    ),
]
InsecureOpt = Annotated[
    bool,
    typer.Option(
        "--insecure", help="Allow a non-loopback --listen without tokens or TLS (not advised)."
    ),
]
LOG_FORMATS = ("text", "json")
LogFormatOpt = Annotated[
    str,
    typer.Option("--log-format", metavar="FORMAT", help="Event lines on stderr: text or json."),
]
AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as", metavar="NAME", help="Operator name to record (default: $SUDO_USER, else $USER)."
    ),
]


def check_writable(option: str, path: Path) -> None:
    """A file to write that the user named: in a directory that exists and we may write,
    and not a directory itself (exit 2 before any work, not a traceback after it)."""
    import os

    from recovery_cli.errors import UsageError

    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"{option}: directory {parent} does not exist")
    if path.is_dir():
        raise UsageError(f"{option}: {path} is a directory; give a file name")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{option}: cannot write to directory {parent}: permission denied")


@contextlib.contextmanager
def writing(option: str, path: Path) -> Iterator[None]:
    """Writing a file the user named: a path that cannot be written (missing, read-only,
    not a directory) is their usage error, exit 2; a full disk stays what it is."""
    import errno

    from recovery_cli.errors import RecoveryError, UsageError

    try:
        yield
    except (OSError, RecoveryError) as exc:
        cause = exc if isinstance(exc, OSError) else exc.__cause__
        refused = {
            errno.ENOENT,
            errno.EACCES,
            errno.EPERM,
            errno.EROFS,
            errno.ENOTDIR,
            errno.EISDIR,
        }
        if not isinstance(cause, OSError) or cause.errno not in refused:
            raise
        raise UsageError(f"{option}: cannot write {path}: {cause.strerror}") from None


def session_of(ctx: typer.Context) -> Session:
    session: Session = ctx.obj
    return session


def orchestrator(session: Session, read_only: bool = False) -> Orchestrator:
    from recovery_cli import render
    from recovery_cli.orchestrator import Orchestrator

    components = session.read_only_components if read_only else session.components
    store = session.store(read_only)
    return Orchestrator(session.config, store, session.env, components, render.ask)


def warn_backend(store: Store) -> None:
    """On stderr, when the state database does not answer: what follows is this host's
    state dir, not the fleet's state."""
    from recovery_cli import render

    problem = store.backend_problem()
    if problem:
        render.err(f"warning: {problem}; showing this host's state dir instead")


def warn_config(session: Session) -> None:
    """On stderr, what the kinds say about the config: it loads, but will not work as meant."""
    from recovery_cli import render

    for warning in session.config.warnings:
        render.err(f"warning: {warning}")


def trace_start(session: Session) -> str | None:
    """With --verbose: say which config and state dir are used; returns the run's start."""
    if not session.verbose:
        return None
    from recovery_cli import render
    from recovery_cli.handlers.util import format_ts

    render.err(f"config: {session.config_file}")
    render.err(f"state dir: {session.state_dir}")
    return format_ts(session.env.clock.now())


def trace_records(session: Session, since: str | None) -> None:
    """With --verbose: every audit record this run wrote, oldest first, in full."""
    if since is None:
        return
    from recovery_cli import render

    store = session.store(read_only=True)
    mine = [r for r in store.audit.read_back(since=since) if r.get("pid") == session.env.pid]
    for record in reversed(mine):
        fields = ("event", "component", "strategy", "outcome", "reason", "attempt_id", "detail")
        text = " ".join(f"{k}={record[k]}" for k in fields if record.get(k) not in (None, ""))
        render.err(f"audit {record['ts']} {render.readable_times(text)}")


def event_log(log_format: str, source: str) -> EventLog:
    """The one-line-per-event log of ``watch`` and ``serve`` on stderr."""
    from recovery_cli import render
    from recovery_cli.errors import UsageError
    from recovery_cli.watch import EventLog

    if log_format not in LOG_FORMATS:
        raise UsageError(f"--log-format must be one of {', '.join(LOG_FORMATS)}")
    return EventLog(render.err, json_lines=log_format == "json", source=source)


def start_api(session: Session, listen: str, insecure: bool, log: EventLog) -> RunningApi:
    from recovery_cli.api_running import RunningApi
    from recovery_cli.api_server import parse_listen

    where = parse_listen(listen)
    api = RunningApi(session, where, insecure, log)
    tokens = len(session.config.api.tokens)
    log.note("API listening", listen=str(where), tokens=tokens)
    return api
