"""A private PostgreSQL (the machine's ``initdb``/``pg_ctl``) on a free loopback port.

PostgreSQL refuses to run as root: under root the server runs as the ``postgres`` system user
when there is one, else as a user created for the tests (``recovery-pg``). Its data and socket
directories live in a fresh temporary directory that user owns. One server serves a whole test
session; each test gets a database of its own (``database()``)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port

TEST_USER = "recovery-pg"


def bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(versions[-1]).parent if versions else None


def available() -> bool:
    return bin_dir() is not None


@dataclass
class Postgres:
    port: int
    root: Path
    bindir: Path
    user: str | None  # the system user the server runs as (None: the current user)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _as_user(
            self.user, [str(self.bindir / "pg_ctl"), "-D", str(self.data), *args], check
        )

    @property
    def data(self) -> Path:
        return self.root / "data"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self.pg_ctl("-l", str(self.root / "log"), "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-m", mode, "-w", "stop", check=False)


def _as_user(user: str | None, argv: list[str], check: bool) -> subprocess.CompletedProcess[str]:
    command = argv if user is None else ["runuser", "-u", user, "--", *argv]
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", TEST_USER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
        check=True,
        capture_output=True,
    )
    return TEST_USER


@contextlib.contextmanager
def running_postgres() -> Iterator[Postgres]:
    bindir = bin_dir()
    assert bindir is not None, "PostgreSQL is not installed"
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="recovery-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    root.chmod(0o700)
    server = Postgres(free_port(), root, bindir, user)
    _as_user(
        user,
        [
            str(bindir / "initdb"),
            "-D",
            str(server.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ],
        check=True,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
