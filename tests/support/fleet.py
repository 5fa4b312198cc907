"""Simulated hosts (distinct host names and state dirs) sharing one config and one
PostgreSQL, each running the real ``recovery`` command."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
import yaml

from tests.support.cli import child_env
from tests.support.postgres import Postgres, running_postgres

DSN_ENV = "TEST_RECOVERY_DSN"


class Fleet:
    """One config, and a state dir per simulated host."""

    def __init__(self, root: Path, dsn: str) -> None:
        self.root = root
        self.dsn = dsn
        self.config = root / "recovery_config.yml"

    def write_config(self, components: Mapping[str, Any], **extra: Any) -> None:
        config = {
            "version": 1,
            "defaults": {
                "cooldown_seconds": 0,
                "max_attempts_per_hour": 3,
                "lock_wait_seconds": 60,
                "retry": {"attempts": 1, "initial_delay": 0, "jitter": False},
            },
            "state": {"backend": "postgres", "dsn_env": DSN_ENV},
            "components": dict(components),
            **extra,
        }
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))

    def argv(self, host: str, *args: str) -> list[str]:
        state = self.root / f"state-{host}"
        base = [sys.executable, "-m", "recovery_cli", "--config", str(self.config)]
        return [*base, "--state-dir", str(state), *args]

    def env(self, host: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return child_env({"RECOVERY_HOST": host, DSN_ENV: self.dsn, **(extra or {})})

    def run(
        self, host: str, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(host, *args),
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env(host, env),
            stdin=subprocess.DEVNULL,
        )

    def rows(self, event: str | None = None) -> list[dict[str, Any]]:
        with psycopg.connect(self.dsn) as conn:
            lines = conn.execute("SELECT line FROM recovery_audit ORDER BY seq").fetchall()
        records = [json.loads(line) for (line,) in lines]
        return [r for r in records if event is None or r["event"] == event]


def failing_component(
    tmp_path: Path, scope: str, fix: Sequence[str] = ("sleep", "0.1")
) -> dict[str, Any]:
    return {
        "kind": "command",
        "scope": scope,
        "settings": {"probe": ["test", "-f", str(tmp_path / "never")]},
        "chain": ["fix"],
        "strategies": {"fix": {"params": {"command": list(fix)}}},
    }


def popen_on(fleet: Fleet, host: str, *args: str) -> subprocess.Popen[str]:
    """``recovery ARGS`` as host ``host``, running in the background."""
    return subprocess.Popen(
        fleet.argv(host, *args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=fleet.env(host),
        stdin=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def private_fleet(root: Path) -> Iterator[tuple[Postgres, Fleet]]:
    """A PostgreSQL of its own (a test may stop and start it), migrated, and a fleet on it."""
    from recovery_cli.pg_schema import migrate

    with running_postgres() as server:
        dsn = server.create_database()
        with psycopg.connect(dsn, autocommit=True) as conn:
            migrate(conn)
        yield server, Fleet(root, dsn)
