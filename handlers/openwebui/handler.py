"""The ``openwebui`` handler: an OpenWebUI server and the model backends behind it.

Probe: ``/health``, ``/ready``, ``/health/db``; a working admin credential (the stored token
from ``token_refresh`` or the API key named by ``api_key_env``); every required model listed
by ``/api/models``; optionally one tiny chat through the default model. ``/health`` and
``/ready`` stay green while every model backend is down, so the model checks are what see
an upstream outage.

A healthy probe after a ``model_failover`` that worked carries the mark ``on_fallback``;
once the primary (the default before the failover) answers a chat again it also names
``restore_config`` as the follow-up.

Strategies (``recovery_cli.handlers.openwebui.strategies``): ``token_refresh``,
``model_failover``, ``graceful_degradation``, ``restore_config``, ``restart_service``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from recovery_cli.handlers.base import (
    BaseHandler,
    Check,
    ComponentContext,
    Health,
    ProbeResult,
)
from recovery_cli.handlers.openwebui.api import Api, open_client
from recovery_cli.handlers.openwebui.changes import DEFAULT_MODELS, matches
from recovery_cli.handlers.openwebui.checks import (
    DOWN_TYPES,
    MODEL_MISSING,
    UPSTREAM_UNAVAILABLE,
    Finding,
    Session,
    authenticate,
    chat,
    check_serving,
    credentials,
    default_models,
    enabled_connections,
    failing_connections,
    first_default,
    listed_models,
)
from recovery_cli.handlers.openwebui.kind import KIND
from recovery_cli.handlers.openwebui.settings import OpenWebUISettings
from recovery_cli.handlers.openwebui.state import HandlerFiles
from recovery_cli.handlers.util import trim

ON_FALLBACK = "on_fallback"


class OpenWebUIHandler(BaseHandler):
    kind = "openwebui"
    spec = KIND
    # the API key is one admin credential of several; email and password only token_refresh needs
    judges_own_secrets = True

    def __init__(self, context: ComponentContext) -> None:
        super().__init__(context)
        self.settings = OpenWebUISettings.model_validate(context.settings)
        self.files = HandlerFiles(context.state_dir, context.name, context.read_only, context.now)

    # -- sessions ------------------------------------------------------------------------------

    def session(self, api: Api) -> Session | Finding:
        found, notes = credentials(
            self.files, self.context.secret("api_key_env"), self.context.now()
        )
        return authenticate(api, found, notes)

    @contextmanager
    def connect(self, deadline: float) -> Iterator[Api]:
        """An unauthenticated ``Api`` whose every call ends by ``deadline``."""
        with open_client(self.settings.url, self.settings.verify_tls) as client:
            yield Api(client, deadline)

    # -- probe ---------------------------------------------------------------------------------

    def probe(self) -> ProbeResult:
        started = time.monotonic()
        with self.connect(started + self.context.probe_timeout) as api:
            result = self._probe(api)
        if result.healthy:
            metrics = {**result.metrics, "probe_seconds": round(time.monotonic() - started, 3)}
            return ProbeResult.ok(result.detail, metrics, result.marks, result.follow_up)
        return result

    def _probe(self, api: Api) -> ProbeResult:
        serving = check_serving(api)
        if serving is not None:
            return self._result(serving)
        session = self.session(api)
        if isinstance(session, Finding):
            return self._result(session)
        models = listed_models(session, self.settings.refresh_models)
        if isinstance(models, Finding):
            return self._result(models)
        ids = [str(m["id"]) for m in models]
        finding = self._models_finding(session, ids) or self._smoke_finding(session, ids)
        if finding is not None:
            return self._result(finding)
        source = session.credential.source
        detail = f"serving; {len(ids)} model(s) listed; authenticated with the {source}"
        metrics = {"models_listed": float(len(ids))}
        fallback = self._on_fallback(session, ids)
        if fallback is None:
            return ProbeResult.ok(detail, metrics)
        note, follow_up = fallback
        return ProbeResult.ok(f"{detail}; {note}", metrics, (ON_FALLBACK,), follow_up)

    def _on_fallback(self, session: Session, ids: Sequence[str]) -> tuple[str, str | None] | None:
        """(note, follow-up) while the default model is still the fallback a failover set;
        the follow-up is ``restore_config`` once the primary answers a chat again."""
        change = self.files.load_changes().get(DEFAULT_MODELS)
        config = default_models(session) if change is not None else None
        if change is None or not isinstance(config, dict):
            return None
        if not matches(change.set, config.get(DEFAULT_MODELS)):
            return None  # a restore or a person changed the default since
        fallback = first_default(config)
        primary = first_default({DEFAULT_MODELS: change.before})
        note = f"on fallback: the default model is {fallback} since {change.by}"
        if primary is None:
            return f"{note}; no primary to return to", None
        if primary in ids and chat(session, primary) is None:
            return f"{note}; the primary {primary} answers again: restore_config is due", (
                "restore_config"
            )
        return f"{note}; restore_config waits until the primary {primary} answers", None

    def _models_finding(self, session: Session, ids: Sequence[str]) -> Finding | None:
        missing = [m for m in self.settings.required_models if m not in ids]
        if not missing:
            return None
        return self._not_listed(session, f"required model(s) not listed: {', '.join(missing)}")

    def _smoke_finding(self, session: Session, ids: Sequence[str]) -> Finding | None:
        if not self.settings.chat_smoke_test:
            return None
        model = self.smoke_model(session)
        if model is None:
            return None
        if model not in ids:
            return self._not_listed(session, f"default model {model!r} is not listed")
        return chat(session, model)

    def _not_listed(self, session: Session, what: str) -> Finding:
        """A missing model is an upstream outage when a connection's backend fails its model
        list (a refreshed list then drops every model of that connection)."""
        failures = failing_connections(session, enabled_connections(session.connections))
        if failures:
            return Finding(UPSTREAM_UNAVAILABLE, f"{what}; " + "; ".join(failures.values()))
        return Finding(MODEL_MISSING, what)

    def smoke_model(self, session: Session) -> str | None:
        """The model the chat smoke test uses: configured, else OpenWebUI's default."""
        if self.settings.smoke_model:
            return self.settings.smoke_model
        config = default_models(session)
        default = None if isinstance(config, Finding) else first_default(config)
        return default or (
            self.settings.required_models[0] if self.settings.required_models else None
        )

    def _result(self, finding: Finding) -> ProbeResult:
        detail = finding.detail
        changes = self.files.load_changes().values()
        if any(c.by == "graceful_degradation" for c in changes):
            detail += "; graceful_degradation is in effect (restore_config undoes it)"
        if finding.failure_type in DOWN_TYPES:
            return ProbeResult(Health.DOWN, finding.failure_type, trim(detail))
        return ProbeResult(Health.DEGRADED, finding.failure_type, trim(detail))

    # -- preflight -----------------------------------------------------------------------------

    def preflight(self, strategy: str) -> list[Check]:
        from recovery_cli.handlers.openwebui.preflight import preflight_checks

        return preflight_checks(self, strategy)
