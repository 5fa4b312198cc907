"""The ``openwebui`` handler: an OpenWebUI server and the model backends behind it.

Probe: ``/health``, ``/ready``, ``/health/db``; a working admin credential (the stored token
from ``token_refresh`` or the API key named by ``api_key_env``); every required model listed
by ``/api/models``; optionally one tiny chat through the default model. ``/health`` and
``/ready`` stay green while every model backend is down, so the model checks are what see
an upstream outage.

Strategies (``recovery_cli.handlers.openwebui.strategies``): ``token_refresh``,
``model_failover``, ``graceful_degradation``, ``restore_config``.
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


class OpenWebUIHandler(BaseHandler):
    kind = "openwebui"
    spec = KIND

    def __init__(self, context: ComponentContext) -> None:
        super().__init__(context)
        self.settings = OpenWebUISettings.model_validate(context.settings)
        self.files = HandlerFiles(context.state_dir, context.name, context.read_only, context.now)

    # -- config --------------------------------------------------------------------------------

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
            return ProbeResult.ok(result.detail, metrics)
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
        return ProbeResult.ok(detail, {"models_listed": float(len(ids))})

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
        baseline = self.files.load_baseline()
        if baseline is not None and baseline.get("degraded"):
            detail += "; graceful_degradation is in effect (restore_config undoes it)"
        if finding.failure_type in DOWN_TYPES:
            return ProbeResult(Health.DOWN, finding.failure_type, trim(detail))
        return ProbeResult(Health.DEGRADED, finding.failure_type, trim(detail))

    # -- strategies ----------------------------------------------------------------------------

    # -- preflight -----------------------------------------------------------------------------

    def preflight(self, strategy: str) -> list[Check]:
        from recovery_cli.handlers.openwebui.preflight import preflight_checks

        return preflight_checks(self, strategy)
