"""Judge a Redis server that answers PING from its INFO fields.

Pure functions over the INFO mapping, so each threshold is testable without a server; the
probe in ``redis.py`` gathers the data and calls ``assess``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recovery_cli.handlers.base import Health, ProbeResult
from recovery_cli.handlers.redis.errors import RedisFailure
from recovery_cli.handlers.redis.settings import RedisSettings
from recovery_cli.handlers.util import trim

# With these policies Redis refuses writes at maxmemory instead of evicting: a cache under
# allkeys-lru sits at maxmemory by design, so only these deserve a warning before the limit.
REFUSING_POLICIES = frozenset(
    {"noeviction", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"}
)


@dataclass(frozen=True)
class Finding:
    health: Health
    failure: RedisFailure
    detail: str


def assess(
    info: Mapping[str, Any], settings: RedisSettings, rejected_before: int | None
) -> ProbeResult:
    """Healthy, degraded or down, with the worst finding first in the detail."""
    findings = [
        *_memory(info, settings),
        *_persistence(info),
        *_replication(info, settings),
        *_clients(info, settings, rejected_before),
    ]
    metrics = info_metrics(info)
    summary = _summary(info)
    if not findings:
        return ProbeResult.ok(summary, metrics)
    findings.sort(key=lambda f: f.health is not Health.DOWN)
    worst = findings[0]
    detail = trim("; ".join(f.detail for f in findings) + f" ({summary})")
    return ProbeResult(worst.health, worst.failure.value, detail, metrics)


def info_metrics(info: Mapping[str, Any]) -> dict[str, float]:
    names = (
        "used_memory",
        "maxmemory",
        "connected_clients",
        "maxclients",
        "rejected_connections",
        "loading",
        "uptime_in_seconds",
    )
    return {name: float(info[name]) for name in names if _is_number(info.get(name))}


def _summary(info: Mapping[str, Any]) -> str:
    return (
        f"redis {info.get('redis_version', '?')}, role {info.get('role', '?')}, "
        f"{info.get('connected_clients', '?')} clients, "
        f"used_memory {info.get('used_memory_human', '?')}"
    )


def _memory(info: Mapping[str, Any], settings: RedisSettings) -> list[Finding]:
    used, limit = _int(info, "used_memory"), _int(info, "maxmemory")
    policy = str(info.get("maxmemory_policy", "noeviction"))
    if limit <= 0 or policy not in REFUSING_POLICIES:
        return []
    text = f"used_memory {used} of maxmemory {limit} ({used / limit:.0%}, policy {policy})"
    if used >= limit:
        return [Finding(Health.DOWN, RedisFailure.OOM, f"writes refused: {text}")]
    if used >= settings.memory_warn_ratio * limit:
        return [Finding(Health.DEGRADED, RedisFailure.MEMORY_NEAR_LIMIT, f"near the limit: {text}")]
    return []


def _persistence(info: Mapping[str, Any]) -> list[Finding]:
    problems = []
    if info.get("rdb_last_bgsave_status") == "err":
        problems.append("last RDB save failed (rdb_last_bgsave_status:err)")
    if _int(info, "aof_enabled") and info.get("aof_last_write_status") == "err":
        problems.append("AOF writes failing (aof_last_write_status:err)")
    if _int(info, "aof_enabled") and info.get("aof_last_bgrewrite_status") == "err":
        problems.append("last AOF rewrite failed (aof_last_bgrewrite_status:err)")
    if not problems:
        return []
    detail = "persistence failing, data is not being saved: " + ", ".join(problems)
    return [Finding(Health.DEGRADED, RedisFailure.PERSISTENCE_FAILURE, detail)]


def _replication(info: Mapping[str, Any], settings: RedisSettings) -> list[Finding]:
    role = info.get("role")
    if role != "slave":
        if settings.expected_role == "replica":
            return [
                Finding(
                    Health.DEGRADED,
                    RedisFailure.REPLICA_LINK_DOWN,
                    f"role {role}, expected replica",
                )
            ]
        return []
    link = info.get("master_link_status", "down")
    primary = f"{info.get('master_host', '?')}:{info.get('master_port', '?')}"
    if settings.expected_role == "primary":
        detail = f"server is a read-only replica of {primary} (link {link}); writes are refused"
        return [Finding(Health.DOWN, RedisFailure.READONLY_REPLICA, detail)]
    if link != "up":
        last_io = info.get("master_last_io_seconds_ago", "?")
        detail = f"replica link to {primary} is {link} (last I/O {last_io}s ago)"
        return [Finding(Health.DEGRADED, RedisFailure.REPLICA_LINK_DOWN, detail)]
    return []


def _clients(
    info: Mapping[str, Any], settings: RedisSettings, rejected_before: int | None
) -> list[Finding]:
    findings = []
    connected, limit = _int(info, "connected_clients"), _int(info, "maxclients")
    if limit > 0 and connected >= settings.clients_warn_ratio * limit:
        detail = f"{connected} of maxclients {limit} connections in use"
        findings.append(Finding(Health.DEGRADED, RedisFailure.CLIENTS_NEAR_LIMIT, detail))
    rejected = _int(info, "rejected_connections")
    if rejected_before is not None and rejected > rejected_before:
        detail = (
            f"rejected_connections rose from {rejected_before} to {rejected} since the last probe"
        )
        findings.append(Finding(Health.DEGRADED, RedisFailure.CONNECTIONS_REJECTED, detail))
    return findings


def _int(info: Mapping[str, Any], key: str) -> int:
    value = info.get(key, 0)
    return int(value) if _is_number(value) else 0


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
