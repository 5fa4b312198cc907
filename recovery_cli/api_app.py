"""The HTTP API's routes (FastAPI): imported only by ``watch --listen`` and ``serve``.

Routes map to ``ApiActions``; the gate (``api_auth``) decides who may call them. Errors are
``{"error": "one line"}`` with a status that says what kind: 400 a bad request, 401 no valid
token, 403 a role or a setting that does not allow it, 404 no such component or approval,
409 refused by policy (an approval not pending, a lock another run holds), 413 a body over
1 MiB, 422 a body of the wrong shape, 429 over the rate limit, 500 an internal error (its
traceback in the state dir's log), 503 the server is stopping (more than 64 calls in
progress is answered 503 before a route: ``api_connections.CallLimit``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from recovery_cli import __version__
from recovery_cli.alert_receiver import AlertReceiver
from recovery_cli.api_actions import (
    ALERT_TRIGGER,
    Actor,
    ApiActions,
    HistoryParams,
    NotFound,
    ServerStopping,
)
from recovery_cli.api_auth import ANONYMOUS, Caller, Denied, Gate
from recovery_cli.api_guard import Guard
from recovery_cli.errors import ExitCode, RecoveryError, UsageError

MAX_HISTORY_LIMIT = 1000
REASON = Field(None, max_length=1000)
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
STATUS_FOR_EXIT = {ExitCode.USAGE: 400, ExitCode.BLOCKED: 409, ExitCode.INTERRUPTED: 503}


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecoverBody(Body):
    strategy: str | None = Field(None, max_length=100)
    dry_run: bool = False
    reason: str | None = REASON


class DisableBody(Body):
    for_: str = Field(alias="for", max_length=32, description="How long: 30m, 2h, 1d")
    reason: str = Field(max_length=1000)


class EnableBody(Body):
    reason: str | None = REASON


class DecisionBody(Body):
    decision: Literal["approve", "reject"]
    reason: str | None = REASON


class Background:
    """Recoveries the Alertmanager receiver started; waited for on the way out."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()

    def start(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name="recovery-alert", daemon=True)
        with self.lock:
            self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()

    def drain(self, timeout: float) -> None:
        with self.lock:
            threads = list(self.threads)
        for thread in threads:
            thread.join(timeout)


def redacting(redact: Callable[[str], str]) -> type[JSONResponse]:
    """JSON answers with every form of every secret replaced, as the CLI's output is."""

    class RedactedJSON(JSONResponse):
        def render(self, content: Any) -> bytes:
            return redact(json.dumps(content, default=str, separators=(",", ":"))).encode()

    return RedactedJSON


class Api:
    """The app and what it holds: the actions, the gate (swapped on reload), the receiver."""

    def __init__(
        self,
        actions: ApiActions,
        gate: Gate,
        receiver: AlertReceiver,
        note: Callable[..., None] | None = None,
    ) -> None:
        self.actions = actions
        self.note = note  # one line per alert the receiver decided on
        self.gate = gate
        self.receiver = receiver
        self.background = Background()
        self.json = redacting(actions.session.redact)
        self.app = self._build()

    def _build(self) -> FastAPI:
        app = FastAPI(
            title="recovery-cli",
            version=__version__,
            description="Status, history, approvals and recoveries of recovery-cli over HTTP.",
            docs_url=None,
            redoc_url=None,
            default_response_class=self.json,
            redirect_slashes=False,
        )
        self._errors(app)
        self._reads(app)
        self._changes(app)
        app.add_middleware(Guard, gate=lambda: self.gate, redact=self.actions.session.redact)
        return app

    def caller(self, role: str) -> Any:
        """The caller ``Guard`` let in (it checked the role from the method and path)."""

        def check(request: Request) -> Caller:
            caller: Caller = getattr(request.state, "caller", ANONYMOUS)
            if not caller.may(role):  # a route whose role the guard did not know
                raise Denied(403, f"this needs {role}")
            return caller

        return Depends(check)

    # -- routes --------------------------------------------------------------------------

    def _reads(self, app: FastAPI) -> None:
        actions, read = self.actions, self.caller("read")

        @app.get("/healthz")
        def healthz() -> dict[str, str]:
            return {"status": "ok", "version": __version__}

        @app.get("/metrics", response_class=PlainTextResponse, dependencies=[read])
        def metrics() -> PlainTextResponse:
            text = actions.session.redact(actions.metrics())
            return PlainTextResponse(text, media_type=PROMETHEUS_TEXT)

        @app.get("/api/v1/status", dependencies=[read])
        def status(probe: bool = True) -> list[dict[str, Any]]:
            return actions.status(probe)

        @app.get("/api/v1/components/{name}", dependencies=[read])
        def component(name: str, probe: bool = True) -> dict[str, Any]:
            return actions.component(name, probe)

        @app.get("/api/v1/history", dependencies=[read])
        def history(
            component: str | None = None,
            since: str | None = None,
            until: str | None = None,
            outcome: str | None = None,
            strategy: str | None = None,
            event: str | None = None,
            limit: Annotated[int, Query(ge=1, le=MAX_HISTORY_LIMIT)] = 50,
        ) -> list[dict[str, Any]]:
            params = HistoryParams(component, since, until, outcome, strategy, event, limit)
            return actions.history(params)

        @app.get("/api/v1/stats", dependencies=[read])
        def stats(
            component: str | None = None, since: str | None = None, until: str | None = None
        ) -> dict[str, Any]:
            return actions.stats(component, since, until)

        @app.get("/api/v1/approvals", dependencies=[read])
        def approvals() -> list[dict[str, Any]]:
            return actions.approvals()

    def _changes(self, app: FastAPI) -> None:
        actions, admin, recoverer = self.actions, self.caller("admin"), self.caller("recover")

        @app.post("/api/v1/components/{name}/recover")
        def recover(
            name: str,
            request: Request,
            caller: Caller = recoverer,
            body: RecoverBody | None = None,
        ) -> JSONResponse:
            body = body or RecoverBody()
            actor = _actor(caller, request, body.reason)
            reports, code = actions.recover(name, actor, body.strategy, body.dry_run)
            return self.json(reports, headers={"X-Recovery-Exit-Code": str(code)})

        @app.post("/api/v1/components/{name}/disable")
        def disable(
            name: str, body: DisableBody, request: Request, caller: Caller = admin
        ) -> dict[str, Any]:
            from recovery_cli.history import parse_duration

            seconds = parse_duration(body.for_)
            return actions.disable(name, seconds, _actor(caller, request, body.reason))

        @app.post("/api/v1/components/{name}/enable")
        def enable(
            name: str,
            request: Request,
            caller: Caller = admin,
            body: EnableBody | None = None,
        ) -> dict[str, Any]:
            return actions.enable(name, _actor(caller, request, body.reason if body else None))

        @app.post("/api/v1/approvals/{approval_id}")
        def decide(
            approval_id: str, body: DecisionBody, request: Request, caller: Caller = admin
        ) -> JSONResponse:
            actor = _actor(caller, request, body.reason)
            if body.decision == "reject":
                return self.json(actions.reject(approval_id, actor))
            reports, code = actions.approve(approval_id, actor)
            return self.json(reports, headers={"X-Recovery-Exit-Code": str(code)})

        @app.post("/api/v1/alertmanager", status_code=202)
        async def alertmanager(request: Request, caller: Caller = recoverer) -> JSONResponse:
            payload = await _json_of(request)
            return self.json(self.receive_alerts(payload, _actor(caller, request)), 202)

    def receive_alerts(self, payload: object, actor: Actor) -> dict[str, Any]:
        """Starts one recovery per component the notification names, unless one is running
        or ran within the dedup window; answers at once with the verdicts."""
        known = set(self.actions.session.config.components)
        verdicts = self.receiver.triage(payload, known)
        for verdict in verdicts:
            if self.note is not None:
                self.note(
                    f"alert: {verdict.action}: {verdict.why}",
                    component=verdict.component or "-",
                    token=actor.name,
                )
            if verdict.action == "recover" and verdict.component is not None:
                self._recover_for_alert(verdict.component, verdict.why, actor)
        return {"verdicts": [v.to_json() for v in verdicts]}

    def _recover_for_alert(self, name: str, why: str, actor: Actor) -> None:
        session = self.actions.session

        def run() -> None:
            try:
                alerted = Actor(actor.name, actor.client, why)
                self.actions.recover(name, alerted, trigger=ALERT_TRIGGER)
            except ServerStopping:
                pass  # the step was recorded interrupted
            except Exception as exc:  # the receiver has answered already; keep the error
                import traceback

                text = "".join(traceback.format_exception(exc))
                session.keep_traceback(session.redact(f"alert recovery of {name}:\n{text}"))
            finally:
                self.receiver.finished(name)

        self.background.start(run)

    # -- errors --------------------------------------------------------------------------

    def _errors(self, app: FastAPI) -> None:
        redact = self.actions.session.redact

        @app.exception_handler(Denied)
        def denied(request: Request, exc: Denied) -> JSONResponse:
            return self.json({"error": str(exc)}, exc.status, headers=exc.headers)

        @app.exception_handler(RecoveryError)
        def refused(request: Request, exc: RecoveryError) -> JSONResponse:
            status = 404 if isinstance(exc, NotFound) else STATUS_FOR_EXIT.get(exc.exit_code, 500)
            return self.json({"error": redact("; ".join(exc.lines()))}, status)

        @app.exception_handler(StarletteHTTPException)
        def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
            return self.json({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

        @app.exception_handler(RequestValidationError)
        def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
            errors = list(exc.errors())
            if any(e.get("type") == "json_invalid" for e in errors):
                return self.json({"error": "the body is not JSON"}, 400)
            return self.json({"error": "; ".join(_problem(e) for e in errors)}, 422)

        @app.exception_handler(Exception)
        def crashed(request: Request, exc: Exception) -> JSONResponse:
            import traceback

            where = self.actions.session.keep_traceback(
                redact("".join(traceback.format_exception(exc)))
            )
            return self.json({"error": f"internal error ({where})"}, 500)


def _actor(caller: Caller, request: Request, reason: str | None = None) -> Actor:
    client = request.client
    address = f"{client.host}:{client.port}" if client and client.host else "unix"
    return Actor(caller.name, address, reason)


def _problem(error: Any) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error.get('msg', 'invalid')}"


async def _json_of(request: Request) -> object:
    try:
        return json.loads(await request.body())
    except RecursionError:
        raise UsageError("the body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise UsageError("the body is not JSON") from None
