"""``reconnect``'s optional, invasive part: ``CLIENT KILL`` of idle clients (its params are
``settings.ReconnectParams``).

A separate CLI process cannot reset an application's connection pool, so "reconnect" means:
wait with backoff until the server answers again, then report. When the server is out of
connection slots (``max_clients``), killing long-idle normal clients frees slots for the
applications that need them; that is opt-in and should carry ``approval: required``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from recovery_cli.handlers.redis.settings import CLIENT_NAME, ReconnectParams

if TYPE_CHECKING:
    import redis


def idle_clients(client: redis.Redis, params: ReconnectParams) -> Sequence[Mapping[str, Any]]:
    """Normal clients idle for at least ``min_idle_seconds``, longest idle first; never our
    own connection, never another recovery-cli run, never replicas or pub/sub clients."""
    own_id = int(client.client_id())
    candidates = [
        entry
        for entry in client.client_list(_type="normal")
        if int(entry["id"]) != own_id
        and entry.get("name") != CLIENT_NAME
        and int(entry.get("idle", 0)) >= params.min_idle_seconds
        and "P" not in str(entry.get("flags", ""))
    ]
    candidates.sort(key=lambda entry: int(entry.get("idle", 0)), reverse=True)
    return candidates[: params.max_kill]


def kill_clients(client: redis.Redis, victims: Sequence[Mapping[str, Any]]) -> int:
    killed = 0
    for entry in victims:
        killed += int(client.client_kill_filter(_id=str(entry["id"])))
    return killed


def describe_clients(victims: Sequence[Mapping[str, Any]]) -> str:
    shown = [f"id {v['id']} {v.get('addr', '?')} idle {v.get('idle', '?')}s" for v in victims[:10]]
    more = f" and {len(victims) - 10} more" if len(victims) > 10 else ""
    return ", ".join(shown) + more
