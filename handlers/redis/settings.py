"""The Redis kind's settings and strategy params (pydantic models, checked at config load
time without I/O), and the one way to build a client.

Every client the handler opens is built here with explicit timeouts, no client-side retries
(the orchestrator's policy decides), the protocol pinned to RESP2 (redis-py 8 defaults to
RESP3, which a Redis older than 6 rejects) and no background health checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, PlainValidator, ValidationInfo, field_validator

from recovery_cli.handlers.settings_models import (
    MAX_SECONDS,
    Flag,
    NonEmptyText,
    Params,
    PositiveSeconds,
    PositiveWhole,
    Ratio,
    SettingsModel,
    invalid,
    is_text,
    kind_validator,
    non_empty,
    number,
    one_of,
    params_key,
    required,
    rule,
)

if TYPE_CHECKING:
    pass

SCHEMES = ("redis", "rediss", "unix")
ROLES = ("primary", "replica", "any")
CLIENT_NAME = "recovery-cli"
DEFAULT_TIMEOUT = 2.0
FLUSH_MODES = ("expire", "delete")
KEY_TYPES = ("string", "list", "set", "zset", "hash", "stream")
MAX_IDLE_SECONDS = 86400 * 365
FLUSH_KEY = params_key("flush_corrupted")

# absent: None; given, a non-empty string (null is refused, as it always was)
OptionalText = Annotated[str | None, non_empty()]
FilePath = Annotated[
    str | None, rule(lambda v: v is None or isinstance(v, str), "must be a file path")
]


def _url(value: Any) -> str:
    problem = _url_problem(value)
    if problem is not None:
        raise invalid(problem)
    return str(value)


def _url_problem(url: object) -> str | None:
    if not isinstance(url, str) or not url:
        return "required: redis://host:port/db, rediss://… or unix:///path"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if parts.scheme not in SCHEMES:
        return f"scheme must be one of {', '.join(SCHEMES)}"
    if parts.password:
        return "URL carries a password; use settings.password_env"
    if parts.scheme == "unix" and not parts.path:
        return "a unix URL needs the socket path: unix:///run/redis.sock"
    if parts.scheme != "unix" and not parts.hostname:
        return "the URL needs a host"
    return "port must be positive" if port is not None and port <= 0 else None


class RedisSettings(SettingsModel):
    unknown_key = "unknown setting for kind redis"

    url: Annotated[str, PlainValidator(_url)] = required()
    username: OptionalText = None
    password_env: OptionalText = None
    connect_timeout: PositiveSeconds = Field(DEFAULT_TIMEOUT, alias="connect_timeout_seconds")
    socket_timeout: PositiveSeconds = Field(DEFAULT_TIMEOUT, alias="socket_timeout_seconds")
    expected_role: Annotated[str, one_of(ROLES)] = "primary"
    write_probe: Flag = False
    write_probe_key: NonEmptyText = "__recovery:probe"
    memory_warn_ratio: Ratio = 0.9
    clients_warn_ratio: Ratio = 0.9
    tls_ca_file: OptionalText = None
    tls_cert_file: FilePath = None
    tls_key_file: FilePath = None
    tls_verify: Flag = True

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


def matches_everything(pattern: str) -> bool:
    return set(pattern) <= {"*"}


class FlushParams(Params):
    # only ``true`` itself allows it (any other value never did); read by ``patterns``
    allow_match_all: Annotated[bool, PlainValidator(lambda v: v is True)] = False
    patterns: tuple[str, ...] = required()
    mode: Annotated[str, one_of(FLUSH_MODES)] = "expire"
    ttl_seconds: PositiveWhole = 3600
    max_keys: PositiveWhole = 10000
    scan_count: PositiveWhole = 1000
    key_type: Annotated[str, one_of(KEY_TYPES)] | None = Field(None, alias="type")

    @field_validator("patterns", mode="plain")
    @classmethod
    def _patterns(cls, value: Any, info: ValidationInfo) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise invalid(
                "required: a list of key patterns, e.g. ['cache:*'] (there is no default)"
            )
        if not all(map(is_text, value)):
            raise invalid("every pattern must be a non-empty string")
        if not info.data.get("allow_match_all") and any(map(matches_everything, value)):
            raise invalid("a pattern matching every key needs allow_match_all: true")
        return tuple(value)


Wait = Annotated[float, number(0, MAX_SECONDS)]  # longer than a step's own timeout never helps


class ReconnectParams(Params):
    max_wait_seconds: Wait = 2.0
    initial_delay: Wait = 0.1
    max_delay: Wait = 1.0
    # A loading server answers LOADING until the dataset is in memory: poll it slowly.
    loading_delay: Wait = 1.0
    kill_idle_clients: Flag = False
    min_idle_seconds: Annotated[int, number(0, MAX_IDLE_SECONDS, whole=True)] = 300
    max_kill: PositiveWhole = 100


def _is_backup_name(value: object) -> bool:
    return isinstance(value, str) and "/" not in value and not value.startswith(".")


class RestoreParams(Params):
    # absent or empty: the newest backup
    backup: (
        Annotated[
            str, rule(_is_backup_name, "must be a backup file name (flush-….jsonl), not a path")
        ]
        | None
    ) = None
    replace_existing: Flag = False


PARAMS: dict[str, type[SettingsModel]] = {
    "reconnect": ReconnectParams,
    "flush_corrupted": FlushParams,
    "restore_flushed": RestoreParams,
    "restart_container": Params,
}


# every problem with a component's settings and its strategies' params
validate = kind_validator(RedisSettings, PARAMS)
