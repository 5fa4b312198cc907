"""``recovery test`` preflight for openwebui: reads only, but for one real sign-in.

Each credential an incident would use is proven on its own: the password with a real
sign-in (counted against, and refused by, the same budget ``token_refresh`` keeps; the
token is not kept), the API key without the stored token beside it. A stored token that
still works says nothing about the password that will replace it when it expires.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from recovery_cli.handlers.base import Check
from recovery_cli.handlers.openwebui.api import Api, Reply
from recovery_cli.handlers.openwebui.checks import Credential, Finding, Owner, authenticate
from recovery_cli.handlers.openwebui.settings import ModelFailoverParams
from recovery_cli.handlers.openwebui.signin import (
    budget_exhausted,
    refusal,
    sign_in,
    signed_in,
    signin_cap,
)

PREFLIGHT_TIMEOUT = 10.0


NEEDS_NO_ADMIN = frozenset({"token_refresh", "restart_service"})


def preflight_checks(handler: Owner, strategy: str) -> list[Check]:
    checks = [_state_dir_check(handler), *_server_checks(handler, strategy)]
    extra: dict[str, Callable[[Owner], list[Check]]] = {
        "token_refresh": _signin_credentials,
        "model_failover": _fallback_configured,
    }
    checks += extra[strategy](handler) if strategy in extra else []
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
        name = f"sign-in {key.removesuffix('_env')} set"
        if not var:  # the config cannot work anywhere
            checks.append(Check(name, False, f"settings.{key} is not configured"))
            continue
        # unset matters only where the server runs (the drill skips it elsewhere)
        found = None if ok else False
        checks.append(Check(name, ok, f"${var} is {'set' if ok else 'not set'}", found=found))
    return checks


def _fallback_configured(handler: Owner) -> list[Check]:
    models = ModelFailoverParams.model_validate(
        handler.context.params_for("model_failover")
    ).candidates
    detail = ", ".join(models) if models else "set params.fallback_models (or fallback_model)"
    return [Check("fallback model configured", bool(models), detail)]


def _server_checks(handler: Owner, strategy: str) -> list[Check]:
    url = handler.settings.url
    with handler.connect(time.monotonic() + PREFLIGHT_TIMEOUT) as api:
        reply = api.get("/health")
        if not reply.ok:
            return [Check("server reachable", False, f"{url}: {reply.message}", found=_here(reply))]
        checks = [Check("server reachable", True, url, found=True)]
        if strategy == "token_refresh":
            checks += _signin_works(handler, api)
        if strategy not in NEEDS_NO_ADMIN:
            checks.append(_admin_credential(handler, api))
        return checks


def _here(reply: Reply) -> bool:
    """Anything but a refused connection (an HTTP error, a timeout) is a server here."""
    return not (reply.status is None and reply.error.startswith("ConnectError"))


def _admin_credential(handler: Owner, api: Api) -> Check:
    """The API key alone when one is configured (the stored token expires; the key is what
    the steps fall back to); otherwise what the steps would use now."""
    name = "admin credential works"
    key = handler.context.secret("api_key_env")
    own = [Credential(key, "API key")] if key else None
    found = authenticate(api, own, []) if own else handler.session(api)
    if isinstance(found, Finding):
        return Check(name, False, f"{found.failure_type}: {found.detail}")
    return Check(name, True, f"with the {found.credential.source}")


def _signin_works(handler: Owner, api: Api) -> list[Check]:
    """A real sign-in with the configured email and password."""
    name = "sign-in with the password works"
    email, password = handler.context.secret("email_env"), handler.context.secret("password_env")
    if not email or not password:
        return []  # the "set" checks of token_refresh already fail
    names = f"${handler.settings.email_env} / ${handler.settings.password_env}"
    limited = budget_exhausted(handler, signin_cap(handler))
    if limited is not None:
        return [Check(name, True, f"SKIPPED, not signed in ({limited}): run the drill later")]
    reply = sign_in(handler, api, email, password)
    body = signed_in(reply)
    if body is None:
        problem = refusal(reply)
        detail = f"{problem.failure_type}: {problem.detail}; check {names}"
        return [Check(name, False, detail)]
    role = str(body.get("role", "unknown"))
    if role != "admin":
        detail = f"signed in with {names}, but the role is {role}: recovery steps need an admin"
        return [Check(name, False, detail)]
    return [Check(name, True, f"signed in as an admin with {names} (token not kept)")]
