"""``recovery state migrate|import|export``: the PostgreSQL backend's schema and trail."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from recovery_cli.commands.shared import session_of

if TYPE_CHECKING:
    from recovery_cli.invocation import Session


def migrate(ctx: typer.Context) -> int:
    """Create or update the state database's schema (safe to run again, from any host)."""
    from recovery_cli import render
    from recovery_cli.pg_schema import LATEST, migrate

    session = session_of(ctx)
    with _database(session, migrating=True) as conn:
        applied = migrate(conn)
    if applied:
        render.out(f"schema at version {LATEST} (applied {', '.join(map(str, applied))})")
    else:
        render.out(f"schema up to date (version {LATEST})")
    return 0


def import_(
    ctx: typer.Context,
    source: Annotated[
        Path | None,
        typer.Argument(
            metavar="AUDIT_DIR",
            help="An audit dir of JSONL day files (default: the state dir's).",
        ),
    ] = None,
) -> int:
    """Load a JSONL audit trail (its chain checked first) into the empty database trail."""
    from recovery_cli import render
    from recovery_cli.audit import AuditLog, Digester
    from recovery_cli.pg_transfer import import_trail

    session = session_of(ctx)
    directory = source or session.state_dir / "audit"
    if not directory.is_dir():
        from recovery_cli.errors import UsageError

        raise UsageError(f"{directory}: not a directory of audit day files")
    trail = AuditLog(directory, session.redact, session.audit_key)
    with _database(session) as conn:
        count = import_trail(conn, trail, Digester(session.audit_key))
    render.out(f"imported {count} records from {directory}")
    return 0


def export(
    ctx: typer.Context,
    target: Annotated[
        Path, typer.Argument(metavar="DIR", help="An empty directory for the day files.")
    ],
) -> int:
    """Write the database's audit trail as JSONL day files."""
    from recovery_cli import render
    from recovery_cli.errors import StateError, UsageError
    from recovery_cli.pg_transfer import export_trail

    session = session_of(ctx)
    with _database(session) as conn:
        try:
            count = export_trail(conn, target)
        except (OSError, StateError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise UsageError(f"cannot write to {target}: {why}") from None
    render.out(f"exported {count} records to {target}")
    return 0


def _check_migrated(conn: Any) -> None:
    from recovery_cli.errors import UsageError
    from recovery_cli.pg_schema import LATEST, current_version

    have = current_version(conn)
    if have < LATEST:
        raise UsageError(
            f"the state database's schema is at version {have}, not {LATEST}: "
            "run `recovery state migrate` first"
        )


@contextlib.contextmanager
def _database(session: Session, migrating: bool = False) -> Iterator[Any]:
    """A connection to the configured state database (exit 2 when none is configured), for a
    maintenance command a person runs: no statement timeout; a database error is one line."""
    import psycopg

    from recovery_cli.errors import StateError

    with _connect(session) as conn:
        conn.execute("SET statement_timeout = 0")
        try:
            if not migrating:
                _check_migrated(conn)
            yield conn
        except psycopg.Error as exc:
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            raise StateError(f"the state database refused: {lines[0]}") from None


def _connect(session: Session) -> Any:
    from recovery_cli.errors import UsageError
    from recovery_cli.pg_store import connect

    backend = session.config.state
    if backend.backend != "postgres" or not backend.dsn_env:
        raise UsageError("state.backend is not postgres: there is no state database to use")
    dsn = session.env.environ.get(backend.dsn_env)
    if not dsn:
        raise UsageError(f"state.dsn_env: environment variable {backend.dsn_env} is not set")
    return connect(dsn, backend)
