"""Read-only checks against OpenWebUI, shared by the probe and the strategies.

Each check returns data, or a ``Finding`` (failure type + detail) the caller turns into a
``ProbeResult`` or a ``StrategyResult``. Nothing here changes the server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from recovery_cli.handlers.base import ComponentContext
from recovery_cli.handlers.openwebui.api import (
    Api,
    Reply,
    chat_body,
    detail_of,
    is_access_prohibited,
)
from recovery_cli.handlers.openwebui.settings import OpenWebUISettings
from recovery_cli.handlers.openwebui.state import HandlerFiles
from recovery_cli.handlers.util import format_ts

UNREACHABLE = "unreachable"
NOT_READY = "not_ready"
DB_UNHEALTHY = "db_unhealthy"
TOKEN_INVALID = "token_invalid"
FORBIDDEN = "forbidden"
MODEL_MISSING = "model_missing"
UPSTREAM_UNAVAILABLE = "upstream_unavailable"
AUTH_INVALID_CREDENTIALS = "auth_invalid_credentials"
AUTH_RATE_LIMITED = "auth_rate_limited"
AUTH_MFA_REQUIRED = "auth_mfa_required"
AUTH_PENDING = "auth_pending"
# Failures of the process or its database: the UI itself is down, not only a feature.
DOWN_TYPES = frozenset({UNREACHABLE, NOT_READY, DB_UNHEALTHY})


@dataclass(frozen=True)
class Finding:
    failure_type: str
    detail: str


@dataclass(frozen=True)
class Credential:
    value: str
    source: str  # says where it came from, never what it is


@dataclass(frozen=True)
class Session:
    """An authenticated admin view of the server: the API bound to a working credential
    and the OpenAI connection config read while proving it works."""

    api: Api
    credential: Credential
    connections: Mapping[str, Any] = field(default_factory=dict)


class Owner(Protocol):
    """What the strategies and preflight need from the handler (kept structural so these
    modules do not import the handler module back)."""

    context: ComponentContext
    settings: OpenWebUISettings
    files: HandlerFiles

    def connect(self, deadline: float) -> AbstractContextManager[Api]: ...

    def session(self, api: Api) -> Session | Finding: ...


def server_finding(reply: Reply, what: str) -> Finding:
    """A reply that is neither success nor an auth problem."""
    if reply.status is None:
        return Finding(UNREACHABLE, f"{what}: {reply.error}")
    return Finding(NOT_READY if reply.status == 503 else UNREACHABLE, f"{what}: {reply.message}")


def check_serving(api: Api) -> Finding | None:
    """/health (process), /ready (startup, database, redis), /health/db (SELECT 1)."""
    health = api.get("/health")
    if not health.ok:
        return server_finding(health, "GET /health")
    ready = api.get("/ready")
    if not ready.ok:
        # /ready names its reason: "Startup not complete", "Database not ready", "Redis not ready".
        if ready.status is None:
            return server_finding(ready, "GET /ready")
        kind = DB_UNHEALTHY if "database" in detail_of(ready.body).lower() else NOT_READY
        return Finding(kind, f"GET /ready: {ready.message}")
    db = api.get("/health/db")
    if db.ok:
        return None
    if db.status is None:
        return server_finding(db, "GET /health/db")
    return Finding(DB_UNHEALTHY, f"GET /health/db: {db.message}")


def credentials(
    files: HandlerFiles, api_key: str | None, now: float
) -> tuple[list[Credential], list[str]]:
    """The credentials to try, best first, and notes on the ones skipped."""
    found: list[Credential] = []
    notes: list[str] = []
    stored = files.load_token()
    if stored is not None and stored.usable(now):
        found.append(Credential(stored.token, "stored token"))
    elif stored is not None:
        notes.append(f"stored token expired at {_iso(stored.expires_at)}")
    if api_key:
        found.append(Credential(api_key, "API key"))
    return found, notes


def authenticate(
    api: Api, candidates: Sequence[Credential], notes: Sequence[str]
) -> Session | Finding:
    """Prove a credential works AND has the admin role the strategies need, with one call:
    ``GET /openai/config`` is admin-only and returns the connections we classify with."""
    rejected = list(notes)
    for credential in candidates:
        reply = api.with_credential(credential.value).get("/openai/config")
        if reply.ok and isinstance(reply.body, dict):
            return Session(api.with_credential(credential.value), credential, reply.body)
        if is_access_prohibited(reply):
            return Finding(FORBIDDEN, f"{credential.source}: {reply.message} (admin role needed)")
        if reply.status is None:
            return server_finding(reply, "GET /openai/config")
        if reply.status != 401:
            return server_finding(reply, "GET /openai/config")
        rejected.append(f"{credential.source} rejected ({reply.message})")
    if not candidates:
        rejected.append("no credential: set the api_key_env variable or run token_refresh")
    return Finding(TOKEN_INVALID, "; ".join(rejected))


def listed_models(session: Session, refresh: bool) -> list[dict[str, Any]] | Finding:
    reply = session.api.get("/api/models", **({"refresh": "true"} if refresh else {}))
    if reply.ok and isinstance(reply.body, dict) and isinstance(reply.body.get("data"), list):
        return [m for m in reply.body["data"] if isinstance(m, dict) and "id" in m]
    return reply_finding(reply, "GET /api/models")


def reply_finding(reply: Reply, what: str) -> Finding:
    if is_access_prohibited(reply):
        return Finding(FORBIDDEN, f"{what}: {reply.message}")
    if reply.status == 401:
        return Finding(TOKEN_INVALID, f"{what}: {reply.message}")
    return server_finding(reply, what)


def enabled_connections(connections: Mapping[str, Any]) -> list[tuple[int, str]]:
    """(index, url) of each OpenAI connection that is switched on."""
    if not connections.get("ENABLE_OPENAI_API"):
        return []
    urls = connections.get("OPENAI_API_BASE_URLS") or []
    configs = connections.get("OPENAI_API_CONFIGS") or {}
    enabled = []
    for index, url in enumerate(urls):
        own = configs.get(str(index), configs.get(url, {}))
        if not isinstance(own, dict) or own.get("enable", True):
            enabled.append((index, str(url)))
    return enabled


def connection_failure(session: Session, index: int) -> str | None:
    """Why connection ``index``'s upstream fails its model list, or None when it answers.
    OpenWebUI asks the upstream itself, even for a connection that is switched off."""
    reply = session.api.get(f"/openai/models/{index}")
    if reply.ok or reply.status in (401, 403):  # our credential, not the upstream
        return None
    return reply.message


def failing_connections(session: Session, indexes: Sequence[tuple[int, str]]) -> dict[int, str]:
    failures = {}
    for index, url in indexes:
        reason = connection_failure(session, index)
        if reason is not None:
            failures[index] = f"connection {index} ({safe_url(url)}): {reason}"
    return failures


def chat(session: Session, model: str) -> Finding | None:
    """One tiny non-streamed completion through OpenWebUI; None when it answers."""
    reply = session.api.post("/api/chat/completions", chat_body(model))
    if reply.ok:
        return None
    what = f"chat with {model!r}"
    if reply.status is not None and reply.status >= 500:
        return Finding(UPSTREAM_UNAVAILABLE, f"{what}: {reply.message}")
    if reply.status in (400, 404) and "not found" in detail_of(reply.body).lower():
        return Finding(MODEL_MISSING, f"{what}: {reply.message}")
    return reply_finding(reply, what)


def default_models(session: Session) -> dict[str, Any] | Finding:
    reply = session.api.get("/api/v1/configs/models")
    if reply.ok and isinstance(reply.body, dict):
        return reply.body
    return reply_finding(reply, "GET /api/v1/configs/models")


def first_default(models_config: Mapping[str, Any]) -> str | None:
    value = models_config.get("DEFAULT_MODELS") or ""
    names = [part.strip() for part in str(value).split(",") if part.strip()]
    return names[0] if names else None


def safe_url(url: str) -> str:
    """A URL without any user:password part, for details and audit records."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _iso(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    return format_ts(timestamp)
