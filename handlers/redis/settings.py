"""The Redis handler's settings, their validation, and the one way to build a client.

Every client the handler opens is built here with explicit timeouts, no client-side retries
(the orchestrator's policy decides), the protocol pinned to RESP2 (redis-py 8 defaults to
RESP3, which a Redis older than 6 rejects) and no background health checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from recovery_cli.handlers.base import ComponentContext, SettingsError, number_errors

if TYPE_CHECKING:
    import redis

SCHEMES = ("redis", "rediss", "unix")
ROLES = ("primary", "replica", "any")
CLIENT_NAME = "recovery-cli"
DEFAULT_TIMEOUT = 2.0
MAX_TIMEOUT = 3600  # seconds, as for every timeout in the config

KNOWN_SETTINGS = frozenset(
    {
        "url",
        "username",
        "password_env",
        "connect_timeout_seconds",
        "socket_timeout_seconds",
        "expected_role",
        "write_probe",
        "write_probe_key",
        "memory_warn_ratio",
        "clients_warn_ratio",
        "tls_ca_file",
        "tls_cert_file",
        "tls_key_file",
        "tls_verify",
    }
)


@dataclass(frozen=True)
class RedisSettings:
    url: str
    username: str | None = None
    connect_timeout: float = DEFAULT_TIMEOUT
    socket_timeout: float = DEFAULT_TIMEOUT
    expected_role: str = "primary"
    write_probe: bool = False
    write_probe_key: str = "__recovery:probe"
    memory_warn_ratio: float = 0.9
    clients_warn_ratio: float = 0.9
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify: bool = True

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> RedisSettings:
        """Assumes ``validate_settings`` found no problem (the core checks at load time)."""
        return cls(
            url=str(settings["url"]),
            username=settings.get("username"),
            connect_timeout=float(settings.get("connect_timeout_seconds", DEFAULT_TIMEOUT)),
            socket_timeout=float(settings.get("socket_timeout_seconds", DEFAULT_TIMEOUT)),
            expected_role=str(settings.get("expected_role", "primary")),
            write_probe=bool(settings.get("write_probe", False)),
            write_probe_key=str(settings.get("write_probe_key", "__recovery:probe")),
            memory_warn_ratio=float(settings.get("memory_warn_ratio", 0.9)),
            clients_warn_ratio=float(settings.get("clients_warn_ratio", 0.9)),
            tls_ca_file=settings.get("tls_ca_file"),
            tls_cert_file=settings.get("tls_cert_file"),
            tls_key_file=settings.get("tls_key_file"),
            tls_verify=bool(settings.get("tls_verify", True)),
        )

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def endpoint(self) -> str:
        """Where the server is, for details and checks (the URL never holds a password)."""
        parts = urlsplit(self.url)
        if parts.scheme == "unix":
            return parts.path
        return f"{parts.hostname}:{parts.port or 6379}"


def validate_settings(settings: Mapping[str, Any]) -> list[SettingsError]:
    errors = [
        SettingsError(f"settings.{key}", "unknown setting for kind redis")
        for key in settings
        if key not in KNOWN_SETTINGS
    ]
    errors += _url_errors(settings.get("url"))
    for key in ("connect_timeout_seconds", "socket_timeout_seconds"):
        errors += _positive(settings, key)
    for key in ("memory_warn_ratio", "clients_warn_ratio"):
        errors += _ratio(settings, key)
    for key in ("write_probe", "tls_verify"):
        if key in settings and not isinstance(settings[key], bool):
            errors.append(SettingsError(f"settings.{key}", "must be true or false"))
    if settings.get("expected_role", "primary") not in ROLES:
        errors.append(SettingsError("settings.expected_role", f"must be one of {', '.join(ROLES)}"))
    for key in ("username", "password_env", "write_probe_key", "tls_ca_file"):
        if key in settings and not (isinstance(settings[key], str) and settings[key]):
            errors.append(SettingsError(f"settings.{key}", "must be a non-empty string"))
    return errors


def _url_errors(url: object) -> list[SettingsError]:
    if not isinstance(url, str) or not url:
        return [
            SettingsError(
                "settings.url", "required: redis://host:port/db, rediss://… or unix:///path"
            )
        ]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return [SettingsError("settings.url", f"not a valid URL: {exc}")]
    if parts.scheme not in SCHEMES:
        return [SettingsError("settings.url", f"scheme must be one of {', '.join(SCHEMES)}")]
    if parts.password:
        return [SettingsError("settings.url", "URL carries a password; use settings.password_env")]
    if parts.scheme == "unix" and not parts.path:
        return [
            SettingsError(
                "settings.url", "a unix URL needs the socket path: unix:///run/redis.sock"
            )
        ]
    if parts.scheme != "unix" and not parts.hostname:
        return [SettingsError("settings.url", "the URL needs a host")]
    return (
        [] if port is None or port > 0 else [SettingsError("settings.url", "port must be positive")]
    )


def _positive(settings: Mapping[str, Any], key: str) -> list[SettingsError]:
    value = settings.get(key, DEFAULT_TIMEOUT)
    return number_errors(f"settings.{key}", value, 0, MAX_TIMEOUT, above=True)


def _ratio(settings: Mapping[str, Any], key: str) -> list[SettingsError]:
    return number_errors(f"settings.{key}", settings.get(key, 0.5), 0, 1, above=True)


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
