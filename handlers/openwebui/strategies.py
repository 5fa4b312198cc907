"""The four openwebui strategies.

Every config change is a read-modify-write (OpenWebUI's config endpoints overwrite the
whole form: an omitted field is written as empty), and the first change of an incident
saves a baseline of the values it may touch, so ``restore_config`` can put back exactly
what was there. With ``ctx.dry_run`` they read, decide and describe; they write nothing.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from recovery_cli.handlers.base import StrategyContext, StrategyResult
from recovery_cli.handlers.openwebui.api import Api, Reply
from recovery_cli.handlers.openwebui.checks import (
    AUTH_INVALID_CREDENTIALS,
    AUTH_MFA_REQUIRED,
    AUTH_PENDING,
    AUTH_RATE_LIMITED,
    FORBIDDEN,
    MODEL_MISSING,
    UPSTREAM_UNAVAILABLE,
    Finding,
    Owner,
    Session,
    chat,
    connection_failure,
    default_models,
    enabled_connections,
    first_default,
    listed_models,
    reply_finding,
    server_finding,
)
from recovery_cli.handlers.openwebui.settings import (
    GracefulDegradationParams,
    ModelFailoverParams,
    RestoreConfigParams,
    TokenRefreshParams,
)
from recovery_cli.handlers.openwebui.state import BANNER_KEY, CONNECTION_KEYS, MODEL_KEYS
from recovery_cli.handlers.settings_models import takes
from recovery_cli.handlers.util import format_ts

SIGNIN_WINDOW = 180.0  # OpenWebUI: 15 sign-ins per email per 3 minutes
P = TypeVar("P")  # a strategy's params model
RESTORED_WHAT = "the default models, model connections and banners"


def failed(finding: Finding, **data: Any) -> StrategyResult:
    return StrategyResult.failure(finding.failure_type, finding.detail, **data)


def connected(
    body: Callable[[Owner, StrategyContext, P, Api], StrategyResult],
) -> Callable[[Owner, StrategyContext, P], StrategyResult]:
    """A strategy that talks to the server: given an ``Api`` whose every call ends by the
    step's deadline."""

    @functools.wraps(body)
    def run(handler: Owner, ctx: StrategyContext, params: P) -> StrategyResult:
        with handler.connect(time.monotonic() + ctx.remaining()) as api:
            return body(handler, ctx, params, api)

    return run


def _session(handler: Owner, api: Api) -> Session | StrategyResult:
    session = handler.session(api)
    return failed(session) if isinstance(session, Finding) else session


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
    limited = _signin_budget_exhausted(
        handler, handler.context.now(), params.max_signins_per_window
    )
    if limited is not None:
        return StrategyResult.failure(AUTH_RATE_LIMITED, limited)
    if ctx.dry_run:
        return StrategyResult.success(
            f"dry run: would sign in and store the token in {handler.files.token_path()}"
        )
    reply = api.post("/api/v1/auths/signin", {"email": email, "password": password})
    if reply.status is not None:  # only what reached the server counts against its limit
        handler.files.record_signin(
            handler.context.now(), SIGNIN_WINDOW, rate_limited=reply.status == 429
        )
    return _signin_result(handler, reply)


def _signin_budget_exhausted(handler: Owner, now: float, cap: int) -> str | None:
    """Refuse locally before the server has to: a 429 blocks the account for everyone."""
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


def _signin_result(handler: Owner, reply: Reply) -> StrategyResult:
    body = reply.body if isinstance(reply.body, dict) else {}
    if reply.ok and isinstance(body.get("token"), str):
        return _store_token(handler, body)
    if reply.ok and body.get("next_step"):
        return _next_step_result(handler, str(body["next_step"]))
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


def _next_step_result(handler: Owner, step: str) -> StrategyResult:
    if step == "pending":
        detail = "the account is pending approval by an administrator; not retrying"
        return StrategyResult.failure(AUTH_PENDING, detail)
    detail = (
        f"the account needs a second factor (next step: {step}); an unattended sign-in cannot "
        "complete it. Use an API key (settings.api_key_env) for this account"
    )
    return StrategyResult.failure(AUTH_MFA_REQUIRED, detail)


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
    session = _session(handler, api)
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
    return _switch_default(handler, session, config, current, target, params.verify_chat)


def _switch_default(
    handler: Owner,
    session: Session,
    config: Mapping[str, Any],
    current: str | None,
    target: str,
    verify_chat: bool,
) -> StrategyResult:
    saved = _save_baseline(handler, session, "model_failover")
    if saved is not None:
        return saved
    reply = session.api.post("/api/v1/configs/models", {**config, "DEFAULT_MODELS": target})
    if not reply.ok:
        return failed(reply_finding(reply, "POST /api/v1/configs/models"))
    handler.files.update_baseline(failover={"previous": current, "new": target})
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
    session = _session(handler, api)
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
    banner = _post_banner(handler, session, params)
    if isinstance(banner, StrategyResult):
        return banner
    disabled = _disable(handler, session, sorted(failing))
    if isinstance(disabled, StrategyResult):
        return disabled
    previously = handler.files.load_baseline() or {}
    all_disabled = sorted({*previously.get("disabled_connections", []), *disabled})
    handler.files.update_baseline(degraded=True, disabled_connections=all_disabled)
    reasons = "; ".join(failing.values()) or "no failing connection found, none disabled"
    which = all_disabled or "none"
    detail = f"banner {banner!r} posted; disabled connection(s) {which} ({reasons})"
    return StrategyResult.success(
        detail, enter_degraded=True, banner_id=banner, disabled_connections=all_disabled
    )


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


def _post_banner(
    handler: Owner, session: Session, params: GracefulDegradationParams
) -> str | StrategyResult:
    current = session.api.get("/api/v1/configs/banners")
    if not (current.ok and isinstance(current.body, list)):
        return failed(reply_finding(current, "GET /api/v1/configs/banners"))
    banner_id = f"recovery-cli-{handler.context.name}"
    banner = {
        "id": banner_id,
        "type": params.banner_type,
        "title": params.banner_title,
        "content": params.banner_content,
        "dismissible": True,
        "timestamp": int(handler.context.now()),
    }
    others = [b for b in current.body if isinstance(b, dict) and b.get("id") != banner_id]
    reply = session.api.post("/api/v1/configs/banners", {"banners": [*others, banner]})
    return banner_id if reply.ok else failed(reply_finding(reply, "POST /api/v1/configs/banners"))


def _disable(handler: Owner, session: Session, indexes: list[int]) -> list[int] | StrategyResult:
    if not indexes:
        return []
    current = _connections(handler, session)
    if isinstance(current, StrategyResult):
        return current
    configs = dict(current.get("OPENAI_API_CONFIGS") or {})
    for index in indexes:
        configs[str(index)] = {**(configs.get(str(index)) or {}), "enable": False}
    reply = session.api.post("/openai/config/update", {**current, "OPENAI_API_CONFIGS": configs})
    return indexes if reply.ok else failed(reply_finding(reply, "POST /openai/config/update"))


def _connections(handler: Owner, session: Session) -> dict[str, Any] | StrategyResult:
    reply = session.api.get("/openai/config")
    if reply.ok and isinstance(reply.body, dict):
        return reply.body
    return failed(reply_finding(reply, "GET /openai/config"))


# -- restore_config ------------------------------------------------------------------------


@takes(RestoreConfigParams)
@connected
def restore_config(
    handler: Owner, ctx: StrategyContext, params: RestoreConfigParams, api: Api
) -> StrategyResult:
    baseline = handler.files.load_baseline()
    if baseline is None:
        return StrategyResult.failure(
            "nothing_to_restore", "no saved baseline: no recovery changed the config"
        )
    session = _session(handler, api)
    if isinstance(session, StrategyResult):
        return session
    still = [connection_failure(session, i) for i in baseline.get("disabled_connections", [])]
    if any(still):
        reasons = "; ".join(r for r in still if r)
        return StrategyResult.failure(
            UPSTREAM_UNAVAILABLE, f"upstream still failing ({reasons}); kept degraded"
        )
    saved: dict[str, Any] = baseline["config"]
    if ctx.dry_run:
        return StrategyResult.success(f"dry run: would put back {RESTORED_WHAT}")
    for step in (_restore_models, _restore_connections, _restore_banners):
        problem = step(handler, session, saved)
        if problem is not None:
            return problem
    if params.verify_chat:
        still_failing = _chat_after_restore(handler, session, saved)
        if still_failing is not None:
            return _degrade_again(handler, session, baseline, still_failing)
    return _verify_restored(handler, session, saved)


def _chat_after_restore(
    handler: Owner, session: Session, saved: Mapping[str, Any]
) -> Finding | None:
    """A model list can answer while chat still fails (an overloaded backend): only a
    chat through the restored default proves the upstream is back."""
    model = first_default({"DEFAULT_MODELS": saved.get(MODEL_KEYS["DEFAULT_MODELS"])})
    models = listed_models(session, refresh=True)
    ids = [str(m["id"]) for m in models] if isinstance(models, list) else []
    if model not in ids:
        model = ids[0] if ids else None
    if model is None:
        return None
    problem = chat(session, model)
    return problem if problem and problem.failure_type == UPSTREAM_UNAVAILABLE else None


def _degrade_again(
    handler: Owner, session: Session, baseline: Mapping[str, Any], why: Finding
) -> StrategyResult:
    """The upstream is not back after all: put the degradation back (the baseline stays)."""
    degradation = handler.context.params_for("graceful_degradation")
    banner = _post_banner(handler, session, GracefulDegradationParams.model_validate(degradation))
    disabled = _disable(handler, session, list(baseline.get("disabled_connections", [])))
    for step in (banner, disabled):
        if isinstance(step, StrategyResult):
            return step
    detail = f"restored, but {why.detail}; degradation put back"
    return StrategyResult.failure(UPSTREAM_UNAVAILABLE, detail)


def _restore_models(
    handler: Owner, session: Session, saved: Mapping[str, Any]
) -> StrategyResult | None:
    current = default_models(session)
    if isinstance(current, Finding):
        return failed(current)
    body = {
        **current,
        **{field: saved[key] for field, key in MODEL_KEYS.items() if key in saved},
    }
    reply = session.api.post("/api/v1/configs/models", body)
    return None if reply.ok else failed(reply_finding(reply, "POST /api/v1/configs/models"))


def _restore_connections(
    handler: Owner, session: Session, saved: Mapping[str, Any]
) -> StrategyResult | None:
    current = _connections(handler, session)
    if isinstance(current, StrategyResult):
        return current
    restored = {field: saved[key] for field, key in CONNECTION_KEYS.items() if key in saved}
    if restored.get("OPENAI_API_BASE_URLS", current.get("OPENAI_API_BASE_URLS")) != current.get(
        "OPENAI_API_BASE_URLS"
    ):
        detail = (
            "the OpenAI connection list changed since the baseline; restore connections by hand"
        )
        return StrategyResult.failure("restore_conflict", detail)
    reply = session.api.post("/openai/config/update", {**current, **restored})
    return None if reply.ok else failed(reply_finding(reply, "POST /openai/config/update"))


def _restore_banners(
    handler: Owner, session: Session, saved: Mapping[str, Any]
) -> StrategyResult | None:
    if BANNER_KEY not in saved:
        return None
    reply = session.api.post("/api/v1/configs/banners", {"banners": saved[BANNER_KEY] or []})
    return None if reply.ok else failed(reply_finding(reply, "POST /api/v1/configs/banners"))


def _verify_restored(handler: Owner, session: Session, saved: Mapping[str, Any]) -> StrategyResult:
    export = session.api.get("/api/v1/configs/export")
    if not (export.ok and isinstance(export.body, dict)):
        return failed(reply_finding(export, "GET /api/v1/configs/export"))
    differs = sorted(key for key, value in saved.items() if export.body.get(key) != value)
    if differs:
        return StrategyResult.failure(
            "restore_incomplete", f"still differs from the baseline: {', '.join(differs)}"
        )
    handler.files.drop_baseline()
    detail = f"put back {RESTORED_WHAT} as they were before the incident"
    return StrategyResult.success(detail, exit_degraded=True, restored_keys=sorted(saved))
