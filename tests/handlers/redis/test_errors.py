"""Classification of redis-py exceptions, including the 5.x/6.x shapes (no ``status_code``),
and the INFO thresholds; the real-server cases are in test_probe.py."""

from __future__ import annotations

import subprocess
import sys

import pytest
from redis import exceptions as rx

from recovery_cli.handlers.base import Health
from recovery_cli.handlers.redis.errors import RedisFailure, classify
from recovery_cli.handlers.redis.health import assess
from recovery_cli.handlers.redis.settings import RedisSettings


class LegacyResponseError(rx.ResponseError):
    """What redis-py 5.x/6.x raise: no ``status_code`` attribute at all."""

    def __getattribute__(self, name: str) -> object:
        if name == "status_code":
            raise AttributeError(name)
        return super().__getattribute__(name)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            rx.AuthenticationError("invalid username-password pair"),
            "auth_failed",
        ),
        (rx.BusyLoadingError("Redis is loading the dataset in memory"), "loading"),
        (
            getattr(rx, "MaxConnectionsError", rx.ConnectionError)("Too many connections"),
            "client_pool_exhausted",
        ),
        (rx.ConnectionError("Too many connections"), "client_pool_exhausted"),
        (rx.ConnectionError("max number of clients reached"), "max_clients"),
        (
            rx.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."),
            "connection_failed",
        ),
        (rx.TimeoutError("Timeout reading from socket"), "timeout"),
        (TimeoutError("timed out"), "timeout"),
        (ConnectionResetError(104, "Connection reset by peer"), "connection_failed"),
        (rx.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), "oom"),
        (rx.ReadOnlyError("You can't write against a read only replica."), "readonly_replica"),
        (
            rx.NoPermissionError("this user has no permissions to run the 'info' command"),
            "acl_denied",
        ),
        (
            rx.ResponseError("MISCONF Redis is configured to save RDB snapshots"),
            "persistence_failure",
        ),
        (rx.ResponseError("BUSY Redis is busy running a script."), "busy_script"),
        (
            rx.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
            "data_type_mismatch",
        ),
        (LegacyResponseError("OOM command not allowed when used memory > 'maxmemory'."), "oom"),
        (
            LegacyResponseError("READONLY You can't write against a read only replica."),
            "readonly_replica",
        ),
        (LegacyResponseError("NOPERM this user has no permissions"), "acl_denied"),
        (LegacyResponseError("BUSYKEY Target key name already exists."), "command_error"),
        (rx.ResponseError("ERR unknown command"), "command_error"),
    ],
)
def test_classify(exc: BaseException, expected: str) -> None:
    assert classify(exc).failure == expected


def test_only_waitable_failures_are_transient() -> None:
    assert classify(rx.TimeoutError("t")).transient
    assert not classify(rx.AuthenticationError("WRONGPASS")).transient
    assert not classify(rx.ResponseError("MISCONF x")).transient


SETTINGS = RedisSettings(url="redis://127.0.0.1:1/0")
BASE = {"redis_version": "7.0.15", "role": "master", "connected_clients": 5, "maxclients": 100}


@pytest.mark.parametrize(
    ("info", "health", "failure"),
    [
        ({}, Health.HEALTHY, None),
        (
            {"maxmemory": 100, "used_memory": 95, "maxmemory_policy": "noeviction"},
            Health.DEGRADED,
            "memory_near_limit",
        ),
        (
            {"maxmemory": 100, "used_memory": 95, "maxmemory_policy": "allkeys-lru"},
            Health.HEALTHY,
            None,
        ),
        (
            {"maxmemory": 100, "used_memory": 101, "maxmemory_policy": "volatile-lru"},
            Health.DOWN,
            "oom",
        ),
        (
            {"aof_enabled": 1, "aof_last_write_status": "err"},
            Health.DEGRADED,
            "persistence_failure",
        ),
        ({"aof_enabled": 0, "aof_last_write_status": "err"}, Health.HEALTHY, None),
        ({"connected_clients": 95}, Health.DEGRADED, "clients_near_limit"),
        # A wrong role is worse than a save error: down comes first.
        ({"role": "slave", "rdb_last_bgsave_status": "err"}, Health.DOWN, "readonly_replica"),
    ],
)
def test_assess_info(info: dict[str, object], health: Health, failure: str | None) -> None:
    result = assess({**BASE, **info}, SETTINGS, None)
    assert (result.health, result.failure_type) == (health, failure)


def test_rejected_connections_count_only_when_rising() -> None:
    info = {**BASE, "rejected_connections": 7}
    assert assess(info, SETTINGS, 7).healthy
    assert assess(info, SETTINGS, None).healthy
    assert assess(info, SETTINGS, 5).failure_type == RedisFailure.CONNECTIONS_REJECTED


def test_importing_the_handler_does_not_import_redis_py() -> None:
    code = "import sys, recovery_cli.handlers.redis.handler; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
