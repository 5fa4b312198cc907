"""The ``redis`` handler: probe a Redis server and bring it back.

Failure types and strategies are documented in docs/RECOVERY_PLAYBOOK.md (Redis runbook).
redis-py is imported only inside the functions that talk to the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recovery_cli.handlers.base import (
    BaseHandler,
    Check,
    ComponentContext,
    ProbeResult,
)
from recovery_cli.handlers.redis.backup import component_dir, list_backups
from recovery_cli.handlers.redis.client import make_client
from recovery_cli.handlers.redis.errors import Classified, RedisFailure, classify
from recovery_cli.handlers.redis.health import assess
from recovery_cli.handlers.redis.kind import KIND
from recovery_cli.handlers.redis.settings import FLUSH_KEY, FlushParams, RedisSettings
from recovery_cli.handlers.settings_models import settings_errors
from recovery_cli.handlers.util import format_ts

if TYPE_CHECKING:
    import redis

PROBE_STATE = "probe-state.json"
# a server that gave no answer cannot say whether it wants a password
NO_ANSWER = frozenset({RedisFailure.CONNECTION_FAILED, RedisFailure.TIMEOUT})


class RedisHandler(BaseHandler):
    kind = "redis"
    spec = KIND
    judges_own_secrets = True  # password_env is optional: needed only if the server asks

    def __init__(self, context: ComponentContext) -> None:
        super().__init__(context)
        self.settings = RedisSettings.model_validate(context.settings)

    # --- probe -------------------------------------------------------------------------

    def probe(self) -> ProbeResult:
        from redis.exceptions import RedisError

        # Half the probe budget per network wait: a connect plus one read always fit in it,
        # so a frozen (SIGSTOPped) server fails the probe in time.
        with self.client(self.context.probe_timeout / 2) as client:
            started = time.monotonic()
            try:
                client.ping()
                latency_ms = (time.monotonic() - started) * 1000
                info = client.info()
                if self.settings.write_probe:
                    client.set(self.settings.write_probe_key, format_ts(self.context.now()), ex=30)
            except (RedisError, OSError) as exc:
                return self._down(client, classify(exc))
        result = assess(info, self.settings, self._rejected_before(info))
        metrics = {**result.metrics, "latency_ms": round(latency_ms, 3)}
        return ProbeResult(result.health, result.failure_type, result.detail, metrics)

    def _down(self, client: redis.Redis, failure: Classified) -> ProbeResult:
        detail = f"{self.settings.endpoint}: {failure.detail}"
        if failure.failure is RedisFailure.LOADING:
            detail += _loading_progress(client)
        return ProbeResult.down(failure.failure.value, detail)

    def _rejected_before(self, info: Mapping[str, Any]) -> int | None:
        """The rejected_connections count at the previous probe of the same server run."""
        path = self.context.state_dir / self.context.name / PROBE_STATE
        current = {
            "run_id": info.get("run_id"),
            "rejected_connections": info.get("rejected_connections", 0),
        }
        previous: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            previous = json.loads(path.read_text(encoding="utf-8"))
        with contextlib.suppress(OSError):
            if not self.context.read_only:
                _replace_file(
                    component_dir(self.context.state_dir, self.context.name) / PROBE_STATE,
                    current,
                )
        if previous.get("run_id") != current["run_id"]:
            return None
        return int(previous.get("rejected_connections", 0))

    def check_ready(self, timeout: float) -> Classified | None:
        """None when the server answers PING and is not loading; else what is wrong."""
        from redis.exceptions import RedisError

        with self.client(timeout) as client:
            try:
                client.ping()
                loading = client.info("persistence").get("loading", 0)
            except (RedisError, OSError) as exc:
                return classify(exc)
        if loading:
            return Classified(RedisFailure.LOADING, "the server is still loading its dataset")
        return None

    # --- flush / restore ---------------------------------------------------------------

    # --- preflight ---------------------------------------------------------------------

    def preflight(self, strategy: str) -> list[Check]:
        library = _client_library_check()
        if not library.ok:
            return [library]
        answer = self.check_ready(min(2.0, self.context.probe_timeout))
        checks = [library, *self._credential_checks(answer), self._reachable_check(answer)]
        if strategy == "flush_corrupted":
            checks += self._flush_checks()
        if strategy == "restore_flushed":
            backups = list_backups(self.context.state_dir / self.context.name)
            newest = f", newest {backups[0].name}" if backups else ""
            checks.append(Check("flush_backups", True, f"{len(backups)} flush backups{newest}"))
        return checks

    def _credential_checks(self, answer: Classified | None) -> list[Check]:
        var = self.settings.password_env
        value = self.context.environ.get(var) if var else None
        checks = [_password_check(var, value, answer)]
        for key in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
            path = self.context.settings.get(key)
            if path:
                checks.append(_readable_file_check(key, Path(str(path))))
        return [c for c in checks if c is not None]

    def _reachable_check(self, answer: Classified | None) -> Check:
        """PING answered: a server that reports a problem (MISCONF, OOM, a refused password:
        the password check says which) still proves the path and that it runs here."""
        endpoint = self.settings.endpoint
        if answer is None:
            return Check("reachable", True, f"{endpoint} answers PING", found=True)
        detail = f"{endpoint}: {answer.failure}: {answer.detail}"
        if answer.failure is RedisFailure.CONNECTION_FAILED:
            return Check("reachable", False, detail, found=False)
        if answer.failure is RedisFailure.TIMEOUT:
            return Check("reachable", False, detail)
        if answer.failure is RedisFailure.AUTH_FAILED:
            detail = f"{endpoint} answers, refusing the credentials (see the password check)"
        return Check("reachable", True, detail, found=True)

    def _flush_checks(self) -> list[Check]:
        problems = settings_errors(
            FlushParams, self.context.params_for("flush_corrupted"), FLUSH_KEY
        )
        checks = [
            Check(
                "flush_patterns",
                not problems,
                "; ".join(p.message for p in problems) or "patterns set",
            )
        ]
        target = self.context.state_dir
        while not target.exists() and target != target.parent:
            target = target.parent
        writable = os.access(target, os.W_OK | os.X_OK)
        checks.append(Check("backup_dir_writable", writable, f"backups go to {self.backup_dir()}"))
        return checks

    # --- plumbing ----------------------------------------------------------------------

    @contextlib.contextmanager
    def client(self, timeout: float) -> Iterator[redis.Redis]:
        client = make_client(self.settings, self.context, timeout)
        try:
            yield client
        finally:
            client.close()

    def timeout_until(self, deadline: float) -> float:
        """Per-call socket timeout: the configured ones, but never past the step's deadline."""
        return max(0.05, min(deadline - time.monotonic(), self.settings.socket_timeout))

    def backup_dir(self) -> Path:
        return self.context.state_dir / self.context.name

    def ensure_backup_dir(self) -> Path:
        return component_dir(self.context.state_dir, self.context.name)


def _loading_progress(client: redis.Redis) -> str:
    from redis.exceptions import RedisError

    try:
        info = client.info("persistence")
    except (RedisError, OSError):
        return ""
    loaded, eta = info.get("loading_loaded_perc", "?"), info.get("loading_eta_seconds", "?")
    return f" ({loaded}% loaded, eta {eta}s)"


def _client_library_check() -> Check:
    try:
        import redis as redis_lib
    except ImportError as exc:
        return Check("redis_client", False, f"redis-py is not installed: {exc}", found=False)
    return Check("redis_client", True, f"redis-py {redis_lib.__version__}")


def _replace_file(path: Path, data: Mapping[str, Any]) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(data).encode())
    finally:
        os.close(fd)
    os.replace(temp, path)


def _password_check(var: str | None, value: str | None, answer: Classified | None) -> Check | None:
    """The password is optional: unset passes when the server answers without one, fails
    naming the variable when it asks for one (NOAUTH), and cannot be judged (skipped when
    the server is not on this host) while nothing answers."""
    refusal = answer if answer is not None and answer.failure is RedisFailure.AUTH_FAILED else None
    silent = answer is not None and answer.failure in NO_ANSWER
    if var is None:
        if refusal is None:
            return None
        detail = "the server asks for a password: name its variable in settings.password_env"
        return Check("password", False, detail, found=True)
    if refusal is not None:
        refused = f"the server refuses the password in ${var}" if value else None
        detail = refused or f"${var} is not set and the server asks for a password"
        return Check("password", False, f"{detail} ({refusal.detail})", found=True)
    if value:
        return Check("password", True, f"${var} is set")
    if silent:
        detail = f"${var} is not set; no server answered to say whether it needs one"
        return Check("password", False, detail, found=False)
    return Check("password", True, f"${var} is not set; the server asks for no password")


def _readable_file_check(key: str, path: Path) -> Check:
    if not path.exists():
        return Check(key, False, f"{path} does not exist", found=False)
    readable = path.is_file() and os.access(path, os.R_OK)
    return Check(key, readable, f"{path} {'readable' if readable else 'is not a readable file'}")
