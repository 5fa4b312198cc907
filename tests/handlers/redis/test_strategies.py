"""The redis strategies against a real redis-server: reconnect, flush/restore, restart."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from recovery_cli.config import ServiceConfig
from recovery_cli.handlers.base import Health
from recovery_cli.handlers.redis import strategies
from recovery_cli.handlers.redis.backup import list_backups, read_backup
from recovery_cli.handlers.redis.flush import flush
from recovery_cli.handlers.redis.handler import RedisHandler
from recovery_cli.handlers.redis.settings import FlushParams
from recovery_cli.handlers.redis.settings import validate as validate_redis
from recovery_cli.service import build_service
from tests.support.net import free_port
from tests.support.redis_server import (
    SLOW_LOADING,
    RedisServer,
    redis_handler,
    running_redis,
    save_dataset,
    strategy_context,
)

pytestmark = pytest.mark.slow

FLUSH = {"patterns": ["cache:*"], "mode": "delete", "max_keys": 100}


def seed(client: redis.Redis) -> dict[bytes, Any]:
    """Leaked cache keys of several types, plus keys the flush must never touch."""
    client.set("cache:str", b"\x00\xffbinary")
    client.hset("cache:hash", mapping={"a": "1", "b": "2"})
    client.rpush("cache:list", "x", "y", "z")
    client.zadd("cache:zset", {"m": 1.5})
    client.set("cache:changed", "old")
    client.set("cache:with-ttl", "v", ex=600)
    client.set("session:1", "keep me")
    return {key: client.dump(key) for key in client.scan_iter(match="*")}


def flush_handler(server: RedisServer, state: Path, **params: object) -> RedisHandler:
    return redis_handler(server.url, state, params={"flush_corrupted": {**FLUSH, **params}})


# --- flush / restore -----------------------------------------------------------------------


def test_flush_backs_up_deletes_keeps_a_changed_key_and_restore_undoes_it(
    server: RedisServer, admin: redis.Redis, tmp_path: Path
) -> None:
    before = seed(admin)
    handler = flush_handler(server, tmp_path / "state")

    def app_writes_during_the_flush() -> Path:  # runs after the DUMPs, before the deletes
        admin.set("cache:changed", "new")
        return handler.ensure_backup_dir()

    header = {"component": "redis", "redis_version": "7.0.15"}
    result = flush(
        admin,
        FlushParams.model_validate(FLUSH),
        app_writes_during_the_flush,
        header,
        lambda: 10.0,
        False,
        time.time(),
    )

    assert result.ok, result.detail
    assert result.data["outcome"] == {"deleted": 4, "changed": 1}
    assert admin.get("cache:changed") == b"new"
    assert admin.get("session:1") == b"keep me" and admin.ttl("cache:with-ttl") > 0
    assert sorted(admin.scan_iter(match="cache:*")) == [b"cache:changed", b"cache:with-ttl"]

    restored = strategies.restore_flushed(handler, strategy_context(handler, "restore_flushed"))

    assert restored.ok and restored.data["restored"] == 4, restored.detail
    for key in (b"cache:str", b"cache:hash", b"cache:list", b"cache:zset", b"session:1"):
        assert admin.dump(key) == before[key], key
    assert admin.get("cache:changed") == b"new"  # the newer value wins over the backup


def test_flush_strategy_writes_a_private_fsynced_backup_first(
    server: RedisServer, admin: redis.Redis, tmp_path: Path
) -> None:
    before = seed(admin)
    handler = flush_handler(server, tmp_path / "state")
    result = strategies.flush_corrupted(handler, strategy_context(handler, "flush_corrupted"))
    assert result.ok, result.detail
    [path] = list_backups(tmp_path / "state" / "redis")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    backup = read_backup(path)
    assert {e.key: e.dump for e in backup.entries} == {
        k: v for k, v in before.items() if k.startswith(b"cache:") and k != b"cache:with-ttl"
    }
    assert all(e.pttl == -1 for e in backup.entries)
    assert set(backup.outcome.values()) == {"deleted"}
    assert result.data["backup"] == path.name


def test_restore_twice_keeps_what_exists_unless_told_to_replace(
    server: RedisServer, admin: redis.Redis, tmp_path: Path
) -> None:
    seed(admin)
    handler = flush_handler(server, tmp_path / "state")
    assert strategies.flush_corrupted(handler, strategy_context(handler, "flush_corrupted")).ok
    ctx = strategy_context(handler, "restore_flushed")
    assert strategies.restore_flushed(handler, ctx).data["restored"] == 5
    admin.set("cache:str", "rewritten by the app")
    again = strategies.restore_flushed(handler, ctx)
    assert (again.data["restored"], again.data["kept_existing"]) == (0, 5)
    assert admin.get("cache:str") == b"rewritten by the app"
    forced = redis_handler(
        server.url, tmp_path / "state", params={"restore_flushed": {"replace_existing": True}}
    )
    assert (
        strategies.restore_flushed(forced, strategy_context(forced, "restore_flushed")).data[
            "restored"
        ]
        == 5
    )
    assert admin.get("cache:str") == b"\x00\xffbinary"


def test_dry_run_lists_and_changes_nothing(
    server: RedisServer, admin: redis.Redis, tmp_path: Path
) -> None:
    before = seed(admin)
    handler = flush_handler(server, tmp_path / "state")
    result = strategies.flush_corrupted(
        handler, strategy_context(handler, "flush_corrupted", dry_run=True)
    )
    assert result.ok and "would back up and delete 5 keys" in result.detail
    assert "cache:hash" in result.detail and "session:1" not in result.detail
    assert {k: admin.dump(k) for k in admin.scan_iter(match="*")} == before
    assert list_backups(tmp_path / "state" / "redis") == []


def test_over_max_keys_changes_nothing(
    server: RedisServer, admin: redis.Redis, tmp_path: Path
) -> None:
    before = seed(admin)
    handler = flush_handler(server, tmp_path / "state", max_keys=3)
    result = strategies.flush_corrupted(handler, strategy_context(handler, "flush_corrupted"))
    assert (result.ok, result.failure_type) == (False, "too_many_keys")
    assert {k: admin.dump(k) for k in admin.scan_iter(match="*")} == before


def test_expire_mode_sets_a_ttl_only_on_keys_without_one(
    server: RedisServer, admin: redis.Redis, tmp_path: Path
) -> None:
    seed(admin)
    handler = flush_handler(server, tmp_path / "state", mode="expire", ttl_seconds=120)
    result = strategies.flush_corrupted(handler, strategy_context(handler, "flush_corrupted"))
    assert result.ok and result.data["expired"] == 5, result.detail
    assert 0 < admin.ttl("cache:hash") <= 120
    assert admin.ttl("cache:with-ttl") > 120  # NX: an existing TTL is left alone
    assert admin.ttl("session:1") == -1


def test_a_flush_without_patterns_refuses(server: RedisServer, tmp_path: Path) -> None:
    handler = redis_handler(server.url, tmp_path / "state")
    result = strategies.flush_corrupted(handler, strategy_context(handler, "flush_corrupted"))
    assert (result.ok, result.failure_type) == (False, "invalid_params")


def test_validate_config_rejects_unsafe_or_broken_settings() -> None:
    errors = validate_redis(
        {"url": "http://x", "socket_timeout_seconds": 0, "bogus": 1},
        {
            "flush_corrupted": {"patterns": ["*"], "mode": "wipe"},
            "restore_flushed": {"backup": "../etc/passwd"},
            "reconnect": {"kill_idle_clients": "yes"},
        },
    )
    keys = {e.key for e in errors}
    assert keys == {
        "settings.url",
        "settings.socket_timeout_seconds",
        "settings.bogus",
        "strategies.flush_corrupted.params.patterns",
        "strategies.flush_corrupted.params.mode",
        "strategies.restore_flushed.params.backup",
        "strategies.reconnect.params.kill_idle_clients",
    }
    allowed = validate_redis(
        {"url": "unix:///run/redis.sock"},
        {"flush_corrupted": {"patterns": ["*"], "allow_match_all": True}},
    )
    assert allowed == []


# --- reconnect -------------------------------------------------------------------------------


def test_reconnect_never_retries_a_wrong_password(
    server: RedisServer, admin: redis.Redis, tmp_path: Path
) -> None:
    admin.config_set("requirepass", "right")
    handler = redis_handler(server.url, tmp_path, {"password_env": "PW"}, environ={"PW": "wrong"})
    started = time.monotonic()
    result = strategies.reconnect(handler, strategy_context(handler, "reconnect"))
    assert (result.failure_type, result.retryable, result.data["tries"]) == (
        "auth_failed",
        False,
        1,
    )
    assert time.monotonic() - started < 1.0


def test_reconnect_waits_with_backoff_until_the_server_is_back(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    handler = redis_handler(server.url, tmp_path / "state")
    starter = threading.Timer(0.6, server.start)
    starter.start()
    try:
        result = strategies.reconnect(handler, strategy_context(handler, "reconnect"))
    finally:
        starter.join()
        server.stop()
    assert result.ok, result.detail
    assert result.data["tries"] > 2


def test_reconnect_gives_up_within_its_window(tmp_path: Path) -> None:
    handler = redis_handler(
        f"redis://127.0.0.1:{free_port()}/0",
        tmp_path,
        params={"reconnect": {"max_wait_seconds": 0.5}},
    )
    started = time.monotonic()
    result = strategies.reconnect(handler, strategy_context(handler, "reconnect"))
    assert (result.ok, result.failure_type) == (False, "connection_failed")
    assert 0.3 < time.monotonic() - started < 1.5


def test_reconnect_kills_idle_clients_only_when_enabled_and_not_in_dry_run(
    server: RedisServer, admin: redis.Redis, tmp_path: Path
) -> None:
    app = server.client(client_name="app")
    app.ping()
    params = {"reconnect": {"kill_idle_clients": True, "min_idle_seconds": 0}}
    handler = redis_handler(server.url, tmp_path, params=params)
    try:
        dry = strategies.reconnect(
            handler, strategy_context(handler, "reconnect", "max_clients", dry_run=True)
        )
        assert "would CLIENT KILL" in dry.detail and _names(admin).count("app") == 1
        real = strategies.reconnect(handler, strategy_context(handler, "reconnect", "max_clients"))
        assert real.ok and real.data["killed"] >= 1, real.detail
        assert "app" not in _names(admin)
    finally:
        app.close()


def _names(admin: redis.Redis) -> list[str]:
    return [entry["name"] for entry in admin.client_list()]


# --- restart ---------------------------------------------------------------------------------


def test_restart_brings_a_killed_server_back_with_its_data(
    server: RedisServer, admin: redis.Redis, tmp_path: Path
) -> None:
    admin.set("order:1", "paid")
    admin.close()
    server.kill9()
    handler = redis_handler(server.url, tmp_path / "state")
    assert handler.probe().failure_type == "connection_failed"
    service = build_service(
        ServiceConfig(method="command", restart=server.restart_argv()), handler.probe, {}
    )
    result = strategies.restart_container(
        handler,
        strategy_context(handler, "restart_container", "connection_failed", service=service),
    )
    assert result.ok, result.detail
    assert handler.probe().health is Health.HEALTHY
    client = server.client()
    assert client.get("order:1") == b"paid"
    client.close()


def test_restart_without_service_control_refuses(server: RedisServer, tmp_path: Path) -> None:
    handler = redis_handler(server.url, tmp_path)
    result = strategies.restart_container(handler, strategy_context(handler, "restart_container"))
    assert (result.ok, result.failure_type) == (False, "no_service_control")


def test_restart_after_misconf_warns_that_the_disk_needs_fixing(
    server: RedisServer, tmp_path: Path
) -> None:
    handler = redis_handler(server.url, tmp_path)
    service = build_service(ServiceConfig(method="command", restart=["true"]), handler.probe, {})
    result = strategies.restart_container(
        handler,
        strategy_context(
            handler, "restart_container", "persistence_failure", dry_run=True, service=service
        ),
    )
    assert result.ok and "Fix the disk first" in result.detail


def test_reconnect_waits_out_a_loading_server(tmp_path: Path) -> None:
    directory = tmp_path / "redis"
    save_dataset(directory, 20000)
    with running_redis(directory, *SLOW_LOADING) as server:
        params = {"reconnect": {"max_wait_seconds": 30, "loading_delay": 0.5}}
        handler = redis_handler(server.url, tmp_path / "state", params=params)
        assert handler.probe().failure_type == "loading"
        result = strategies.reconnect(
            handler, strategy_context(handler, "reconnect", "loading", timeout=30)
        )
        assert result.ok, result.detail
        assert result.data["tries"] > 1
        assert handler.probe().metrics["loading"] == 0
