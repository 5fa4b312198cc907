"""The redis-py client of a component: its own pool, bounded timeouts, TLS, no retries of
its own (the strategies decide when to try again). redis-py is imported here, when a client
is made."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recovery_cli.handlers.base import ComponentContext
from recovery_cli.handlers.redis.settings import CLIENT_NAME, RedisSettings

if TYPE_CHECKING:
    import redis


def make_client(
    settings: RedisSettings, context: ComponentContext, timeout: float | None = None
) -> redis.Redis:
    """A client with its own pool (connected lazily); ``timeout`` caps both socket timeouts."""
    import redis as redis_lib
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    cap = timeout if timeout is not None else max(settings.connect_timeout, settings.socket_timeout)
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": min(settings.connect_timeout, cap),
        "socket_timeout": min(settings.socket_timeout, cap),
        "retry": Retry(NoBackoff(), 0),
        "protocol": 2,
        "health_check_interval": 0,
        "client_name": CLIENT_NAME,
        "password": context.secret("password_env"),
        "username": settings.username,
    }
    if settings.scheme == "rediss":
        kwargs |= _tls_kwargs(settings)
    return redis_lib.Redis.from_url(settings.url, **kwargs)


def _tls_kwargs(settings: RedisSettings) -> dict[str, Any]:
    tls: dict[str, Any] = {"ssl_cert_reqs": "required" if settings.tls_verify else "none"}
    if settings.tls_ca_file:
        tls["ssl_ca_certs"] = settings.tls_ca_file
    if settings.tls_cert_file:
        tls["ssl_certfile"] = settings.tls_cert_file
    if settings.tls_key_file:
        tls["ssl_keyfile"] = settings.tls_key_file
    if not settings.tls_verify:
        tls["ssl_check_hostname"] = False
    return tls
