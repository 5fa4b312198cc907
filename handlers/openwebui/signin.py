"""Password sign-in, shared by ``token_refresh`` and the drill (``preflight``): one budget
for both, kept in ``signins.json``, far below the server's limit (a 429 locks the account
out for everyone, people included)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from recovery_cli.handlers.base import StrategyResult
from recovery_cli.handlers.openwebui.api import Api, Reply
from recovery_cli.handlers.openwebui.checks import (
    AUTH_INVALID_CREDENTIALS,
    AUTH_MFA_REQUIRED,
    AUTH_PENDING,
    AUTH_RATE_LIMITED,
    FORBIDDEN,
    Owner,
    server_finding,
)
from recovery_cli.handlers.openwebui.settings import TokenRefreshParams

SIGNIN_WINDOW = 180.0  # OpenWebUI: 15 sign-ins per email per 3 minutes


def signin_cap(handler: Owner) -> int:
    params = TokenRefreshParams.model_validate(handler.context.params_for("token_refresh"))
    return params.max_signins_per_window


def budget_exhausted(handler: Owner, cap: int) -> str | None:
    """Refuse locally before the server has to."""
    now = handler.context.now()
    record = handler.files.signins()
    blocked = record.get("blocked_until")
    if isinstance(blocked, int | float) and blocked > now:
        return f"the server rate-limited sign-in; not retrying for another {blocked - now:.0f}s"
    recent = [
        t
        for t in record.get("attempts", [])
        if isinstance(t, int | float) and t > now - SIGNIN_WINDOW
    ]
    if len(recent) >= cap:
        window = f"{SIGNIN_WINDOW:.0f}s"
        return f"{len(recent)} sign-ins in the last {window} (cap {cap}); wait before the next"
    return None


def sign_in(handler: Owner, api: Api, email: str, password: str) -> Reply:
    """One sign-in, counted against the budget if it reached the server."""
    reply = api.post("/api/v1/auths/signin", {"email": email, "password": password})
    if reply.status is not None:  # only what reached the server counts against its limit
        handler.files.record_signin(
            handler.context.now(), SIGNIN_WINDOW, rate_limited=reply.status == 429
        )
    return reply


def signed_in(reply: Reply) -> Mapping[str, Any] | None:
    """The sign-in answer's body when it carries a session token."""
    body = reply.body if isinstance(reply.body, dict) else {}
    return body if reply.ok and isinstance(body.get("token"), str) else None


def refusal(reply: Reply) -> StrategyResult:
    """Why a sign-in gave no token, as the failure ``token_refresh`` reports."""
    body = reply.body if isinstance(reply.body, dict) else {}
    if reply.ok and body.get("next_step"):
        return _next_step_result(str(body["next_step"]))
    if reply.status == 400:
        return StrategyResult.failure(AUTH_INVALID_CREDENTIALS, f"sign-in refused: {reply.message}")
    if reply.status == 429:
        return StrategyResult.failure(
            AUTH_RATE_LIMITED, f"sign-in rate-limited by the server: {reply.message}"
        )
    if reply.status == 409:  # the password or sessions changed while signing in
        return StrategyResult.failure("auth_changed", f"sign-in: {reply.message}", retryable=True)
    if reply.status == 403:
        return StrategyResult.failure(FORBIDDEN, f"password sign-in is disabled: {reply.message}")
    finding = server_finding(reply, "POST /api/v1/auths/signin")
    return StrategyResult.failure(finding.failure_type, finding.detail, retryable=True)


def _next_step_result(step: str) -> StrategyResult:
    if step == "pending":
        detail = "the account is pending approval by an administrator; not retrying"
        return StrategyResult.failure(AUTH_PENDING, detail)
    detail = (
        f"the account needs a second factor (next step: {step}); an unattended sign-in cannot "
        "complete it. Use an API key (settings.api_key_env) for this account"
    )
    return StrategyResult.failure(AUTH_MFA_REQUIRED, detail)
