"""Config validation (at load time, no I/O) and ``recovery test`` preflight for openwebui."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from recovery_cli.handlers.base import Check, SettingsError, number_errors
from recovery_cli.handlers.openwebui.checks import Finding, Owner

ENV_KEYS = ("api_key_env", "email_env", "password_env")
BOOL_SETTINGS = ("chat_smoke_test", "refresh_models", "verify_tls")
PREFLIGHT_TIMEOUT = 10.0
MAX_SIGNINS_CAP = 15  # the server allows 15 sign-ins per email in 3 minutes


def validate(
    settings: Mapping[str, Any],
    strategy_params: Mapping[str, Mapping[str, Any]],
    banner_types: Sequence[str],
) -> list[SettingsError]:
    errors = _settings_errors(settings)
    errors += _failover_errors(strategy_params.get("model_failover", {}))
    errors += _degradation_errors(strategy_params.get("graceful_degradation", {}), banner_types)
    errors += _token_refresh_errors(strategy_params.get("token_refresh", {}))
    errors += _bool_errors(
        strategy_params.get("restore_config", {}), "restore_config", ("verify_chat",)
    )
    return errors


def _settings_errors(settings: Mapping[str, Any]) -> list[SettingsError]:
    errors = []
    url = settings.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        errors.append(
            SettingsError(
                "settings.url", "needs an http:// or https:// URL of the OpenWebUI server"
            )
        )
    for key in ENV_KEYS:
        value = settings.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            errors.append(SettingsError(f"settings.{key}", "must name an environment variable"))
    errors += _string_list_errors(settings.get("required_models"), "settings.required_models")
    smoke = settings.get("smoke_model")
    if smoke is not None and not (isinstance(smoke, str) and smoke):
        errors.append(SettingsError("settings.smoke_model", "must be a model id"))
    for key in BOOL_SETTINGS:
        if key in settings and not isinstance(settings[key], bool):
            errors.append(SettingsError(f"settings.{key}", "must be true or false"))
    return errors


def _failover_errors(params: Mapping[str, Any]) -> list[SettingsError]:
    base = "strategies.model_failover.params"
    errors = _string_list_errors(params.get("fallback_models"), f"{base}.fallback_models")
    single = params.get("fallback_model")
    if single is not None and not (isinstance(single, str) and single):
        errors.append(SettingsError(f"{base}.fallback_model", "must be a model id"))
    return errors + _bool_errors(params, "model_failover", ("verify_chat",))


def _degradation_errors(
    params: Mapping[str, Any], banner_types: Sequence[str]
) -> list[SettingsError]:
    base = "strategies.graceful_degradation.params"
    errors = []
    for key in ("banner_title", "banner_content"):
        if key in params and not isinstance(params[key], str):
            errors.append(SettingsError(f"{base}.{key}", "must be text"))
    if "banner_type" in params and params["banner_type"] not in banner_types:
        errors.append(
            SettingsError(f"{base}.banner_type", f"must be one of {', '.join(banner_types)}")
        )
    return errors + _bool_errors(params, "graceful_degradation", ("disable_failing_connections",))


def _token_refresh_errors(params: Mapping[str, Any]) -> list[SettingsError]:
    value = params.get("max_signins_per_window")
    if value is None:
        return []
    key = "strategies.token_refresh.params.max_signins_per_window"
    return number_errors(key, value, 1, MAX_SIGNINS_CAP, whole=True)


def _bool_errors(
    params: Mapping[str, Any], strategy: str, keys: Sequence[str]
) -> list[SettingsError]:
    return [
        SettingsError(f"strategies.{strategy}.params.{key}", "must be true or false")
        for key in keys
        if key in params and not isinstance(params[key], bool)
    ]


def _string_list_errors(value: Any, key: str) -> list[SettingsError]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        return [SettingsError(key, "must be a list of model ids")]
    return []


def fallback_models(params: Mapping[str, Any]) -> list[str]:
    models = list(params.get("fallback_models") or [])
    if params.get("fallback_model"):
        models.insert(0, str(params["fallback_model"]))
    return models


# -- preflight (for `recovery test`): reads only ------------------------------------------------


def preflight_checks(handler: Owner, strategy: str) -> list[Check]:
    checks = [_state_dir_check(handler)]
    extra: dict[str, Callable[[Owner], list[Check]]] = {
        "token_refresh": _signin_credentials,
        "model_failover": _fallback_configured,
    }
    checks += extra[strategy](handler) if strategy in extra else []
    checks += _server_checks(handler, needs_admin=strategy != "token_refresh")
    return checks


def _state_dir_check(handler: Owner) -> Check:
    ok = handler.files.writable()
    return Check(
        "state dir writable",
        ok,
        str(handler.files.dir) if ok else f"cannot write {handler.files.dir}",
    )


def _signin_credentials(handler: Owner) -> list[Check]:
    checks = []
    for key in ("email_env", "password_env"):
        var = handler.context.settings.get(key)
        ok = bool(handler.context.secret(key))
        detail = (
            f"${var} is set"
            if ok
            else (f"${var} is not set" if var else f"settings.{key} is not configured")
        )
        checks.append(Check(f"sign-in {key.removesuffix('_env')} set", ok, detail))
    return checks


def _fallback_configured(handler: Owner) -> list[Check]:
    models = fallback_models(handler.context.params_for("model_failover"))
    detail = ", ".join(models) if models else "set params.fallback_model"
    return [Check("fallback model configured", bool(models), detail)]


def _server_checks(handler: Owner, needs_admin: bool) -> list[Check]:
    url = str(handler.context.settings.get("url"))
    with handler.connect(time.monotonic() + PREFLIGHT_TIMEOUT) as api:
        reply = api.get("/health")
        if not reply.ok:
            return [Check("server reachable", False, f"{url}: {reply.message}")]
        checks = [Check("server reachable", True, url)]
        if needs_admin:
            session = handler.session(api)
            if isinstance(session, Finding):
                checks.append(
                    Check(
                        "admin credential works", False, f"{session.failure_type}: {session.detail}"
                    )
                )
            else:
                checks.append(
                    Check("admin credential works", True, f"with the {session.credential.source}")
                )
        return checks
