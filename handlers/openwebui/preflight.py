"""``recovery test`` preflight for openwebui: reads only."""

from __future__ import annotations

import time
from collections.abc import Callable

from recovery_cli.handlers.base import Check
from recovery_cli.handlers.openwebui.checks import Finding, Owner
from recovery_cli.handlers.openwebui.settings import ModelFailoverParams

PREFLIGHT_TIMEOUT = 10.0


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
        var = getattr(handler.settings, key)
        ok = bool(handler.context.secret(key))
        detail = (
            f"${var} is set"
            if ok
            else (f"${var} is not set" if var else f"settings.{key} is not configured")
        )
        checks.append(Check(f"sign-in {key.removesuffix('_env')} set", ok, detail))
    return checks


def _fallback_configured(handler: Owner) -> list[Check]:
    models = ModelFailoverParams.model_validate(
        handler.context.params_for("model_failover")
    ).candidates
    detail = ", ".join(models) if models else "set params.fallback_model"
    return [Check("fallback model configured", bool(models), detail)]


def _server_checks(handler: Owner, needs_admin: bool) -> list[Check]:
    url = handler.settings.url
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
