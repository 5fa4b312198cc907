from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Workspace
from tests.support.postgres import Postgres, running_postgres
from tests.support.postgres import available as postgres_available


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One private PostgreSQL for the whole session (each test takes a database of its own)."""
    if not postgres_available():
        pytest.skip("PostgreSQL (pg_ctl) is not installed")
    with running_postgres() as server:
        yield server


@pytest.fixture
def pg_dsn(postgres: Postgres) -> str:
    """A fresh database with the schema applied."""
    import psycopg

    from recovery_cli.pg_schema import migrate

    dsn = postgres.create_database()
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate(conn)
    return dsn
