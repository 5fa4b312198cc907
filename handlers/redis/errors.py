"""Turn a redis-py exception into one of the Redis handler's failure types.

The order matters: redis-py makes ``AuthenticationError`` and ``BusyLoadingError`` subclasses
of ``ConnectionError``, so the specific classes are checked before their parents. 5.x and
6.x have no ``status_code`` attribute and 5.x may lack ``MaxConnectionsError``, so every
check falls back to the message text the server (or the pool) sends.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RedisFailure(enum.StrEnum):
    AUTH_FAILED = "auth_failed"
    LOADING = "loading"
    CLIENT_POOL_EXHAUSTED = "client_pool_exhausted"
    MAX_CLIENTS = "max_clients"
    CONNECTION_FAILED = "connection_failed"
    TIMEOUT = "timeout"
    OOM = "oom"
    READONLY_REPLICA = "readonly_replica"
    ACL_DENIED = "acl_denied"
    PERSISTENCE_FAILURE = "persistence_failure"
    BUSY_SCRIPT = "busy_script"
    DATA_TYPE_MISMATCH = "data_type_mismatch"
    COMMAND_ERROR = "command_error"
    # Found from INFO while the server answers (degraded, or down for a wrong role).
    MEMORY_NEAR_LIMIT = "memory_near_limit"
    CLIENTS_NEAR_LIMIT = "clients_near_limit"
    CONNECTIONS_REJECTED = "connections_rejected"
    REPLICA_LINK_DOWN = "replica_link_down"


# Failures a wait (and a fresh connection) can cure; the others need an operator or a
# different strategy, so retrying them only burns the step's time budget.
TRANSIENT = frozenset(
    {
        RedisFailure.LOADING,
        RedisFailure.CLIENT_POOL_EXHAUSTED,
        RedisFailure.MAX_CLIENTS,
        RedisFailure.CONNECTION_FAILED,
        RedisFailure.TIMEOUT,
        RedisFailure.BUSY_SCRIPT,
    }
)


@dataclass(frozen=True)
class Classified:
    failure: RedisFailure
    detail: str

    @property
    def transient(self) -> bool:
        return self.failure in TRANSIENT


def classify(exc: BaseException) -> Classified:
    """The failure type of an exception raised by a redis-py call."""
    failure = _classify_class(exc)
    return Classified(failure, describe(exc))


def describe(exc: BaseException) -> str:
    """One line naming the exception; redis-py messages never carry the password."""
    code = getattr(exc, "status_code", None)
    message = str(exc).strip() or "(no message)"
    prefix = f"{code} " if code and not message.startswith(str(code)) else ""
    return f"{type(exc).__name__}: {prefix}{message}".splitlines()[0]


def _classify_class(exc: BaseException) -> RedisFailure:
    from redis import exceptions as rx

    pool_exhausted = getattr(rx, "MaxConnectionsError", None)
    if isinstance(exc, rx.AuthenticationError) or _code(exc) in {"NOAUTH", "WRONGPASS"}:
        return RedisFailure.AUTH_FAILED
    if isinstance(exc, rx.BusyLoadingError) or _code(exc) == "LOADING":
        return RedisFailure.LOADING
    if (pool_exhausted and isinstance(exc, pool_exhausted)) or "Too many connections" in str(exc):
        return RedisFailure.CLIENT_POOL_EXHAUSTED
    if isinstance(exc, rx.ConnectionError):
        if "max number of clients reached" in str(exc):
            return RedisFailure.MAX_CLIENTS
        return RedisFailure.CONNECTION_FAILED
    if isinstance(exc, rx.TimeoutError | TimeoutError):
        return RedisFailure.TIMEOUT
    if isinstance(exc, rx.ResponseError):
        return _classify_response(exc)
    if isinstance(exc, OSError):
        return RedisFailure.CONNECTION_FAILED
    return RedisFailure.COMMAND_ERROR


def _classify_response(exc: BaseException) -> RedisFailure:
    """Server error replies, by class when redis-py has one, else by the reply's prefix."""
    from redis import exceptions as rx

    by_class: tuple[tuple[type[BaseException], RedisFailure], ...] = (
        (rx.OutOfMemoryError, RedisFailure.OOM),
        (rx.ReadOnlyError, RedisFailure.READONLY_REPLICA),
        (rx.NoPermissionError, RedisFailure.ACL_DENIED),
    )
    for cls, failure in by_class:
        if isinstance(exc, cls):
            return failure
    return _by_prefix(_code(exc) or str(exc).split(" ", 1)[0])


_PREFIXES = {
    "OOM": RedisFailure.OOM,
    "READONLY": RedisFailure.READONLY_REPLICA,
    "NOPERM": RedisFailure.ACL_DENIED,
    "MISCONF": RedisFailure.PERSISTENCE_FAILURE,
    "BUSY": RedisFailure.BUSY_SCRIPT,
    "WRONGTYPE": RedisFailure.DATA_TYPE_MISMATCH,
    "NOAUTH": RedisFailure.AUTH_FAILED,
    "WRONGPASS": RedisFailure.AUTH_FAILED,
    "LOADING": RedisFailure.LOADING,
}


def _by_prefix(prefix: str) -> RedisFailure:
    return _PREFIXES.get(prefix, RedisFailure.COMMAND_ERROR)


def _code(exc: BaseException) -> str | None:
    code = getattr(exc, "status_code", None)
    return str(code) if code else None
