"""The openwebui strategies (``restore_config`` lives in ``restore``).

Every config change goes through ``changes.change_config``: recorded (key, value set, value
before) and then written as a read-modify-write of the live form; the first change of an
incident also saves an export of the config as the baseline. With ``ctx.dry_run`` they
read, decide and describe; they write nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from recovery_cli.handlers.base import StrategyContext, StrategyResult
from recovery_cli.handlers.openwebui.api import Api
from recovery_cli.handlers.openwebui.changes import (
    DEFAULT_MODELS,
    banner_key,
    change_config,
    connection_key,
    disabled_by_recovery,
)
from recovery_cli.handlers.openwebui.checks import (
    AUTH_RATE_LIMITED,
    MODEL_MISSING,
    UPSTREAM_UNAVAILABLE,
    Finding,
    Owner,
    Session,
    chat,
    check_serving,
    connection_failure,
    default_models,
    enabled_connections,
    first_default,
    listed_models,
    reply_finding,
)
from recovery_cli.handlers.openwebui.restore import restore
from recovery_cli.handlers.openwebui.settings import (
    GracefulDegradationParams,
    ModelFailoverParams,
    RestoreConfigParams,
    TokenRefreshParams,
)
from recovery_cli.handlers.openwebui.signin import budget_exhausted, refusal, sign_in, signed_in
from recovery_cli.handlers.openwebui.strategy_base import connected, failed, open_session
from recovery_cli.handlers.settings_models import takes
from recovery_cli.handlers.util import format_ts

__all__ = [
    "graceful_degradation",
    "model_failover",
    "restart_service",
    "restore_config",
    "token_refresh",
]

# -- restore_config ------------------------------------------------------------------------


@takes(RestoreConfigParams)
@connected
def restore_config(
    handler: Owner, ctx: StrategyContext, params: RestoreConfigParams, api: Api
) -> StrategyResult:
    """Put back, key by key, what the recovery changed and nobody changed since (the
    three-way restore in ``restore``)."""
    return restore(handler, ctx, params, api)


# -- token_refresh -------------------------------------------------------------------------


@takes(TokenRefreshParams)
@connected
def token_refresh(
    handler: Owner, ctx: StrategyContext, params: TokenRefreshParams, api: Api
) -> StrategyResult:
    email, password = handler.context.secret("email_env"), handler.context.secret("password_env")
    if not email or not password:
        names = f"${handler.settings.email_env} and ${handler.settings.password_env}"
        return StrategyResult.failure("credentials_missing", f"sign-in needs {names} set")
    limited = budget_exhausted(handler, params.max_signins_per_window)
    if limited is not None:
        return StrategyResult.failure(AUTH_RATE_LIMITED, limited)
    if ctx.dry_run:
        return StrategyResult.success(
            f"dry run: would sign in and store the token in {handler.files.token_path()}"
        )
    reply = sign_in(handler, api, email, password)
    body = signed_in(reply)
    return refusal(reply) if body is None else _store_token(handler, body)


def _store_token(handler: Owner, body: Mapping[str, Any]) -> StrategyResult:
    expires = body.get("expires_at")
    expires_at = float(expires) if isinstance(expires, int | float) else None
    handler.files.save_token(str(body["token"]), expires_at)
    role = str(body.get("role", "unknown"))
    until = format_ts(expires_at) if expires_at else "never"
    note = (
        ""
        if role == "admin"
        else "; this account is not an admin, recovery steps will be forbidden"
    )
    stored = f"token stored in {handler.files.token_path()}, expires {until}"
    detail = f"signed in (role {role}); {stored}{note}"
    return StrategyResult.success(detail, role=role, expires_at=expires_at)


# -- model_failover ------------------------------------------------------------------------


@takes(ModelFailoverParams)
@connected
def model_failover(
    handler: Owner, ctx: StrategyContext, params: ModelFailoverParams, api: Api
) -> StrategyResult:
    candidates = params.candidates
    if not candidates:
        return StrategyResult.failure(
            "not_configured", "model_failover needs params.fallback_model"
        )
    session = open_session(handler, api)
    if isinstance(session, StrategyResult):
        return session
    models = listed_models(session, refresh=True)
    config = default_models(session)
    for answer in (models, config):
        if isinstance(answer, Finding):
            return failed(answer)
    assert isinstance(models, list) and isinstance(config, dict)
    current = first_default(config)
    ids = {str(m["id"]) for m in models}
    target = next((m for m in candidates if m in ids and m != current), None)
    if target is None:
        listing = ", ".join(candidates)
        detail = f"no fallback model to switch to: {listing} not listed (default is {current})"
        return StrategyResult.failure(MODEL_MISSING, detail)
    if ctx.dry_run:
        return StrategyResult.success(
            f"dry run: would switch the default model from {current} to {target}"
        )
    return _switch_default(handler, session, current, target, params.verify_chat)


def _switch_default(
    handler: Owner,
    session: Session,
    current: str | None,
    target: str,
    verify_chat: bool,
) -> StrategyResult:
    saved = _save_baseline(handler, session, "model_failover")
    if saved is not None:
        return saved
    problem = change_config(handler, session, "model_failover", {DEFAULT_MODELS: target}, {})
    if problem is not None:
        return failed(problem)
    data = {"previous_default": current, "new_default": target}
    switched = f"default model switched from {current} to {target}"
    if verify_chat:
        problem = chat(session, target)
        if problem is not None:
            return failed(
                Finding(problem.failure_type, f"{switched}, but {problem.detail}"), **data
            )
        switched += "; it answers a chat"
    return StrategyResult.success(switched, **data)


def _save_baseline(handler: Owner, session: Session, taken_by: str) -> StrategyResult | None:
    """Export the config first; keep the first export of an incident as the baseline."""
    reply = session.api.get("/api/v1/configs/export")
    if not (reply.ok and isinstance(reply.body, dict)):
        return failed(reply_finding(reply, "GET /api/v1/configs/export"))
    handler.files.save_baseline_once(reply.body, taken_by)
    return None


# -- graceful_degradation ------------------------------------------------------------------


@takes(GracefulDegradationParams)
@connected
def graceful_degradation(
    handler: Owner, ctx: StrategyContext, params: GracefulDegradationParams, api: Api
) -> StrategyResult:
    session = open_session(handler, api)
    if isinstance(session, StrategyResult):
        return session
    failing = _failing_connections(handler, session) if params.disable_failing_connections else {}
    if ctx.dry_run:
        which = ", ".join(str(i) for i in failing) or "none"
        return StrategyResult.success(
            f"dry run: would export the config, post a banner, disable connection(s) {which}"
        )
    saved = _save_baseline(handler, session, "graceful_degradation")
    if saved is not None:
        return saved
    return _degrade(handler, session, failing, params)


def _degrade(
    handler: Owner,
    session: Session,
    failing: Mapping[int, str],
    params: GracefulDegradationParams,
) -> StrategyResult:
    banner = degradation_banner(handler, params)
    urls = dict(enabled_connections(session.connections))
    values: dict[str, Any] = {banner_key(banner["id"]): banner}
    values |= {connection_key(index): False for index in failing}
    keys = {connection_key(index): urls[index] for index in failing if index in urls}
    problem = change_config(handler, session, "graceful_degradation", values, keys)
    if problem is not None:
        return failed(problem)
    all_disabled = disabled_by_recovery(handler.files.load_changes().values())
    reasons = "; ".join(failing.values()) or "no failing connection found, none disabled"
    which = all_disabled or "none"
    detail = f"banner {banner['id']!r} posted; disabled connection(s) {which} ({reasons})"
    return StrategyResult.success(
        detail, enter_degraded=True, banner_id=banner["id"], disabled_connections=all_disabled
    )


def degradation_banner(handler: Owner, params: GracefulDegradationParams) -> dict[str, Any]:
    return {
        "id": f"recovery-cli-{handler.context.name}",
        "type": params.banner_type,
        "title": params.banner_title,
        "content": params.banner_content,
        "dismissible": True,
        "timestamp": int(handler.context.now()),
    }


def _failing_connections(handler: Owner, session: Session) -> dict[int, str]:
    """Connections whose upstream fails its model list, or lists models but fails a chat."""
    models = listed_models(session, refresh=True)
    by_connection: dict[int, str] = {}
    for model in models if isinstance(models, list) else []:
        if isinstance(model.get("urlIdx"), int):
            by_connection.setdefault(model["urlIdx"], str(model["id"]))
    failing = {}
    for index, _url in enabled_connections(session.connections):
        reason = connection_failure(session, index)
        if reason is None and index in by_connection:
            problem = chat(session, by_connection[index])
            reason = (
                problem.detail if problem and problem.failure_type == UPSTREAM_UNAVAILABLE else None
            )
        if reason is not None:
            failing[index] = f"connection {index}: {reason}"
    return failing


# -- restart_service -----------------------------------------------------------------------

RESTART_TIMEOUT = "restart_timeout"  # the service control's: restarted, probe not healthy yet
SERVING_POLL_FIRST = 0.25
SERVING_POLL_MAX = 1.0
SERVING_CALL_TIMEOUT = 5.0


def restart_service(handler: Owner, ctx: StrategyContext) -> StrategyResult:
    """Restart the OpenWebUI process through the component's ``service:`` block, then wait
    until ``/health``, ``/ready`` and ``/health/db`` answer. The service control waits for
    the whole probe; a probe still failing for another reason (a model backend that is down)
    does not make the restart itself a failure."""
    if ctx.service is None:
        detail = (
            f"no service: block is configured for {handler.context.name}; add one "
            "(e.g. {method: systemd, unit: open-webui}) or restart open-webui by hand"
        )
        return StrategyResult.failure("no_service_control", detail)
    method = ctx.service.method
    if ctx.dry_run:
        return StrategyResult.success(
            f"dry run: would restart via {method}, then wait for /health and /ready"
        )
    started = time.monotonic()
    restarted = ctx.service.restart(max(1.0, ctx.remaining()))
    if not restarted.ok and restarted.failure_type != RESTART_TIMEOUT:
        return StrategyResult.failure(
            restarted.failure_type or "restart_failed",
            f"restart via {method} failed: {restarted.detail}",
            retryable=restarted.retryable,
        )
    problem = _wait_serving(handler, time.monotonic() + ctx.remaining())
    seconds = round(time.monotonic() - started, 3)
    if problem is not None:
        detail = f"restarted via {method}, but not serving after {seconds}s: {problem.detail}"
        return StrategyResult.failure(problem.failure_type, detail, seconds=seconds)
    note = "" if restarted.ok else f"; the probe is not healthy yet ({restarted.detail})"
    return StrategyResult.success(
        f"restarted via {method}; /health and /ready answer after {seconds}s{note}",
        seconds=seconds,
    )


def _wait_serving(handler: Owner, deadline: float) -> Finding | None:
    """Poll the server's own health routes until they answer or ``deadline`` passes."""
    pause = SERVING_POLL_FIRST
    while True:
        with handler.connect(min(deadline, time.monotonic() + SERVING_CALL_TIMEOUT)) as api:
            problem = check_serving(api)
        if problem is None or time.monotonic() + pause >= deadline:
            return problem
        time.sleep(pause)
        pause = min(SERVING_POLL_MAX, pause * 2)
