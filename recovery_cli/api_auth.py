"""Who may call the HTTP API: bearer tokens read from the environment variables the config
names, each with a name (recorded as the operator) and a role; and the per-token rate limit
on mutating calls. No web framework here: the app asks, these answer."""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from recovery_cli.config import ApiConfig
from recovery_cli.errors import UsageError

MIN_TOKEN_LENGTH = 16  # a shorter secret is guessable over the network
ROLES = ("read", "recover", "admin")  # each may do what the ones before it may
BEARER = "bearer "


@dataclass(frozen=True)
class Caller:
    name: str
    role: str

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True)
class _Token:
    caller: Caller
    secret: bytes


class Authenticator:
    """Tokens as the environment held them when the API started (or was reloaded)."""

    def __init__(self, api: ApiConfig, environ: Mapping[str, str]) -> None:
        self.tokens = [
            _read_token(i, t.name, t.env, t.role, environ) for i, t in enumerate(api.tokens)
        ]

    @property
    def configured(self) -> bool:
        return bool(self.tokens)

    def secrets(self) -> list[str]:
        return [token.secret.decode("ascii") for token in self.tokens]

    def identify(self, authorization: str | None) -> Caller | None:
        """The caller an ``Authorization: Bearer ...`` header names, or None. Every token
        is compared, in constant time, whichever matches: the time taken says nothing."""
        if not authorization or authorization[: len(BEARER)].lower() != BEARER:
            return None
        offered = authorization[len(BEARER) :].strip().encode("utf-8", "surrogateescape")
        found: Caller | None = None
        for token in self.tokens:
            if hmac.compare_digest(offered, token.secret):
                found = token.caller
        return found


def _read_token(index: int, name: str, env: str, role: str, environ: Mapping[str, str]) -> _Token:
    value = environ.get(env, "")
    where = f"api.tokens.{index} ({name})"
    if not value:
        raise UsageError(f"{where}: environment variable {env} is not set")
    if not (value.isascii() and value.isprintable()) or " " in value:
        raise UsageError(f"{where}: the token in {env} must be printable ASCII without spaces")
    if len(value) < MIN_TOKEN_LENGTH:
        raise UsageError(
            f"{where}: the token in {env} has fewer than {MIN_TOKEN_LENGTH} characters"
        )
    return _Token(Caller(name, role), value.encode("utf-8", "surrogateescape"))


class RateLimiter:
    """At most ``requests`` calls per ``per_seconds`` for each caller (a sliding window)."""

    def __init__(
        self, requests: int, per_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.requests = requests
        self.per_seconds = per_seconds
        self.clock = clock
        self.calls: dict[str, deque[float]] = {}
        self.lock = threading.Lock()

    def take(self, name: str) -> float | None:
        """Count one call by ``name``; None when it may go ahead, else the seconds until it
        may (the call is then not counted)."""
        with self.lock:
            now = self.clock()
            calls = self.calls.setdefault(name, deque())
            while calls and calls[0] <= now - self.per_seconds:
                calls.popleft()
            if len(calls) >= self.requests:
                return max(0.0, calls[0] + self.per_seconds - now)
            calls.append(now)
            return None


ANONYMOUS = Caller("anonymous", "read")


class Denied(Exception):
    """A call the gate refuses: its HTTP status, the one-line reason, extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class Gate:
    """Authentication, role and rate limit for one call. With no token configured, reads
    are open (the API then listens on loopback or a unix socket only) and changes refused."""

    def __init__(self, auth: Authenticator, limiter: RateLimiter) -> None:
        self.auth = auth
        self.limiter = limiter

    @classmethod
    def from_config(cls, api: ApiConfig, environ: Mapping[str, str]) -> Gate:
        limit = api.rate_limit
        return cls(Authenticator(api, environ), RateLimiter(limit.requests, limit.per_seconds))

    def check(self, authorization: str | None, role: str) -> Caller:
        if not self.auth.configured:
            if role == "read":
                return ANONYMOUS
            raise Denied(403, "changes need an admin token; none is configured (api.tokens)")
        caller = self.auth.identify(authorization)
        if caller is None:
            raise Denied(401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})
        if not caller.may(role):
            raise Denied(403, f"token {caller.name!r} has role {caller.role}; this needs {role}")
        if role != "read":
            wait = self.limiter.take(caller.name)
            if wait is not None:
                retry = max(1, int(wait + 0.999))
                raise Denied(
                    429,
                    f"token {caller.name!r} is over its rate limit; retry in {retry}s",
                    {"Retry-After": str(retry)},
                )
        return caller
