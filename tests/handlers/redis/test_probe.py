"""The redis probe against a real redis-server: every failure induced for real, classified."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from recovery_cli.handlers.base import Health, ProbeResult
from tests.support.net import free_port
from tests.support.redis_server import (
    SLOW_LOADING,
    RedisServer,
    redis_handler,
    running_redis,
    save_dataset,
)

pytestmark = pytest.mark.slow


def test_healthy_server_reports_metrics(server: RedisServer, tmp_path: Path) -> None:
    result = redis_handler(server.url, tmp_path / "state").probe()
    assert result.health is Health.HEALTHY, result.detail
    assert result.metrics["maxclients"] == 10000
    assert "redis 7" in result.detail


def test_refused_connection_is_connection_failed_and_fast(tmp_path: Path) -> None:
    started = time.monotonic()
    result = redis_handler(f"redis://127.0.0.1:{free_port()}/0", tmp_path).probe()
    assert (result.health, result.failure_type) == (Health.DOWN, "connection_failed")
    assert "refused" in result.detail.lower()
    assert time.monotonic() - started < 1.0  # no hidden client retries


def test_wrong_password_is_auth_failed_without_leaking_it(
    server: RedisServer, admin: redis.Redis, tmp_path: Path
) -> None:
    admin.config_set("requirepass", "right-secret")
    settings = {"password_env": "REDIS_PW"}
    wrong = redis_handler(
        server.url, tmp_path, settings, environ={"REDIS_PW": "wrong-secret"}
    ).probe()
    missing = redis_handler(server.url, tmp_path, settings, environ={}).probe()
    right = redis_handler(
        server.url, tmp_path, settings, environ={"REDIS_PW": "right-secret"}
    ).probe()
    assert (wrong.failure_type, missing.failure_type) == ("auth_failed", "auth_failed")
    assert "wrong-secret" not in wrong.detail and "right-secret" not in wrong.detail
    assert right.health is Health.HEALTHY, right.detail


def test_frozen_server_fails_within_the_probe_timeout(server: RedisServer, tmp_path: Path) -> None:
    handler = redis_handler(server.url, tmp_path, probe_timeout=1.0)
    server.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = handler.probe()
        elapsed = time.monotonic() - started
    finally:
        server.signal(signal.SIGCONT)
    assert result.failure_type == "timeout"
    assert elapsed < 1.0, elapsed


def test_oom_from_the_write_probe_and_from_info(
    server: RedisServer, admin: redis.Redis, tmp_path: Path
) -> None:
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", used + 512 * 1024)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        for index in range(100):
            admin.set(f"fill:{index}", b"x" * 100_000)
    with_write = redis_handler(server.url, tmp_path, {"write_probe": True}).probe()
    from_info = redis_handler(server.url, tmp_path).probe()
    assert (with_write.health, with_write.failure_type) == (Health.DOWN, "oom")
    assert (from_info.health, from_info.failure_type) == (Health.DOWN, "oom")


def probe_after_a_failed_bgsave(tmp_path: Path, *options: str) -> ProbeResult:
    """Delete the server's data directory under it, so its next BGSAVE fails for real."""
    data = tmp_path / "data"
    data.mkdir()
    with running_redis(tmp_path / "redis", f"dir {data}", *options) as server:
        client = server.client()
        client.set("k", "v")
        subprocess.run(["rm", "-rf", str(data)], check=True)
        client.bgsave()
        _wait_for(lambda: client.info("persistence")["rdb_last_bgsave_status"] == "err")
        client.close()
        return redis_handler(server.url, tmp_path / "state").probe()


def test_misconf_fails_ping_and_is_persistence_failure(tmp_path: Path) -> None:
    result = probe_after_a_failed_bgsave(tmp_path, 'save "3600 1"')
    assert (result.health, result.failure_type) == (Health.DOWN, "persistence_failure")
    assert "MISCONF" in result.detail


def test_failed_save_without_save_points_is_degraded(tmp_path: Path) -> None:
    # Without save points a failed BGSAVE does not stop writes: degraded, not down.
    result = probe_after_a_failed_bgsave(tmp_path)
    assert (result.health, result.failure_type) == (Health.DEGRADED, "persistence_failure")
    assert "rdb_last_bgsave_status:err" in result.detail


def test_loading_server_is_loading(tmp_path: Path) -> None:
    directory = tmp_path / "redis"
    save_dataset(directory, 30000)
    with running_redis(directory, *SLOW_LOADING) as server:
        result = redis_handler(server.url, tmp_path / "state").probe()
    assert (result.health, result.failure_type) == (Health.DOWN, "loading")
    assert "% loaded" in result.detail


def test_replica_of_a_missing_primary(
    server: RedisServer, admin: redis.Redis, tmp_path: Path
) -> None:
    admin.replicaof("127.0.0.1", free_port())
    as_primary = redis_handler(server.url, tmp_path, {"write_probe": True}).probe()
    as_replica = redis_handler(server.url, tmp_path, {"expected_role": "replica"}).probe()
    assert (as_primary.health, as_primary.failure_type) == (Health.DOWN, "readonly_replica")
    assert (as_replica.health, as_replica.failure_type) == (Health.DEGRADED, "replica_link_down")


def test_max_clients(server: RedisServer, admin: redis.Redis, tmp_path: Path) -> None:
    admin.config_set("maxclients", 2)
    holder = server.client()
    holder.ping()
    try:
        result = redis_handler(server.url, tmp_path).probe()
    finally:
        holder.close()
    assert (result.health, result.failure_type) == (Health.DOWN, "max_clients")


def test_rising_rejected_connections_and_clients_near_limit(
    server: RedisServer, admin: redis.Redis, tmp_path: Path
) -> None:
    handler = redis_handler(server.url, tmp_path, {"clients_warn_ratio": 1.0})
    assert handler.probe().health is Health.HEALTHY
    admin.config_set("maxclients", 1)
    assert handler.probe().failure_type == "max_clients"  # this attempt is rejected
    admin.config_set("maxclients", 3)
    rejected = handler.probe()
    assert (rejected.health, rejected.failure_type) == (Health.DEGRADED, "connections_rejected")
    crowded = redis_handler(server.url, tmp_path, {"clients_warn_ratio": 0.5}).probe()
    assert (crowded.health, crowded.failure_type) == (Health.DEGRADED, "clients_near_limit")


def test_memory_near_maxmemory_is_degraded(
    server: RedisServer, admin: redis.Redis, tmp_path: Path
) -> None:
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory", used + 150_000)  # the probe's own connection adds a little
    handler = redis_handler(server.url, tmp_path, {"memory_warn_ratio": 0.8})
    result = handler.probe()
    evicting = admin.config_set("maxmemory-policy", "allkeys-lru") and handler.probe()
    assert (result.health, result.failure_type) == (Health.DEGRADED, "memory_near_limit")
    assert (
        evicting and evicting.health is Health.HEALTHY
    )  # a cache that evicts is fine at the limit


def test_acl_denied(server: RedisServer, admin: redis.Redis, tmp_path: Path) -> None:
    admin.acl_setuser("probe", enabled=True, passwords=["+probe-pw"], commands=["+ping", "+client"])
    settings = {"username": "probe", "password_env": "PW"}
    result = redis_handler(server.url, tmp_path, settings, environ={"PW": "probe-pw"}).probe()
    assert (result.health, result.failure_type) == (Health.DOWN, "acl_denied")


def test_busy_script(server: RedisServer, admin: redis.Redis, tmp_path: Path) -> None:
    admin.config_set("busy-reply-threshold", 50)
    runner = server.client()
    errors: list[Exception] = []

    def spin() -> None:
        try:
            runner.eval("while true do end", 0)
        except redis.exceptions.ResponseError as exc:
            errors.append(exc)

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        time.sleep(0.3)  # past busy-reply-threshold, so other clients get BUSY
        result = redis_handler(server.url, tmp_path).probe()
    finally:
        admin.script_kill()
        thread.join(10)
        runner.close()
    assert (result.health, result.failure_type) == (Health.DOWN, "busy_script")
    assert errors, "the script was killed"


def test_unix_socket_url(tmp_path: Path) -> None:
    sock = tmp_path / "redis.sock"
    with running_redis(tmp_path / "redis", f"unixsocket {sock}", "unixsocketperm 700") as _server:
        result = redis_handler(f"unix://{sock}?db=0", tmp_path / "state").probe()
    assert result.health is Health.HEALTHY, result.detail


def test_tls_url(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    tls_port = free_port()
    options = (
        f"tls-port {tls_port}",
        f"tls-cert-file {cert}",
        f"tls-key-file {key}",
        f"tls-ca-cert-file {cert}",
        "tls-auth-clients no",
    )
    with running_redis(tmp_path / "redis", *options):
        url = f"rediss://127.0.0.1:{tls_port}/0"
        verified = redis_handler(url, tmp_path / "state", {"tls_ca_file": str(cert)}).probe()
        plain = redis_handler(
            f"redis://127.0.0.1:{tls_port}/0", tmp_path / "state", probe_timeout=1
        ).probe()
    assert verified.health is Health.HEALTHY, verified.detail
    assert plain.health is Health.DOWN


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")
