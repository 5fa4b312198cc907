"""Parameters of ``reconnect`` and its optional, invasive part: ``CLIENT KILL`` of idle clients.

A separate CLI process cannot reset an application's connection pool, so "reconnect" means:
wait with backoff until the server answers again, then report. When the server is out of
connection slots (``max_clients``), killing long-idle normal clients frees slots for the
applications that need them; that is opt-in and should carry ``approval: required``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recovery_cli.handlers.base import SettingsError, number_errors
from recovery_cli.handlers.redis.flush import positive_int
from recovery_cli.handlers.redis.settings import CLIENT_NAME

if TYPE_CHECKING:
    import redis

PARAMS_KEY = "strategies.reconnect.params"
KNOWN = frozenset(
    {
        "max_wait_seconds",
        "initial_delay",
        "max_delay",
        "loading_delay",
        "kill_idle_clients",
        "min_idle_seconds",
        "max_kill",
    }
)
MAX_SECONDS = 3600  # a wait longer than a step's own timeout can never help
MAX_IDLE_SECONDS = 86400 * 365


@dataclass(frozen=True)
class ReconnectParams:
    max_wait_seconds: float = 2.0
    initial_delay: float = 0.1
    max_delay: float = 1.0
    # A loading server answers LOADING until the dataset is in memory: poll it slowly.
    loading_delay: float = 1.0
    kill_idle_clients: bool = False
    min_idle_seconds: int = 300
    max_kill: int = 100

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> ReconnectParams:
        defaults = cls()
        return cls(
            max_wait_seconds=float(params.get("max_wait_seconds", defaults.max_wait_seconds)),
            initial_delay=float(params.get("initial_delay", defaults.initial_delay)),
            max_delay=float(params.get("max_delay", defaults.max_delay)),
            loading_delay=float(params.get("loading_delay", defaults.loading_delay)),
            kill_idle_clients=bool(params.get("kill_idle_clients", False)),
            min_idle_seconds=int(params.get("min_idle_seconds", defaults.min_idle_seconds)),
            max_kill=int(params.get("max_kill", defaults.max_kill)),
        )


def validate_reconnect_params(params: Mapping[str, Any]) -> list[SettingsError]:
    errors = [
        SettingsError(f"{PARAMS_KEY}.{name}", "unknown parameter")
        for name in params
        if name not in KNOWN
    ]
    for name in ("max_wait_seconds", "initial_delay", "max_delay", "loading_delay"):
        errors += number_errors(f"{PARAMS_KEY}.{name}", params.get(name, 1), 0, MAX_SECONDS)
    if not isinstance(params.get("kill_idle_clients", False), bool):
        errors.append(SettingsError(f"{PARAMS_KEY}.kill_idle_clients", "must be true or false"))
    errors += positive_int(params, "max_kill", f"{PARAMS_KEY}.max_kill")
    errors += number_errors(
        f"{PARAMS_KEY}.min_idle_seconds",
        params.get("min_idle_seconds", 0),
        0,
        MAX_IDLE_SECONDS,
        whole=True,
    )
    return errors


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
