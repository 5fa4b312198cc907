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
from typing import TYPE_CHECKING, Any, ClassVar

from recovery_cli.handlers.base import (
    BaseHandler,
    Check,
    ComponentContext,
    ProbeResult,
    SettingsError,
    Strategy,
    StrategyContext,
    StrategyResult,
)
from recovery_cli.handlers.redis.backup import component_dir, list_backups, read_backup
from recovery_cli.handlers.redis.errors import Classified, RedisFailure, classify
from recovery_cli.handlers.redis.flush import (
    FlushParams,
    flush,
    restore,
    utc_now,
    validate_flush_params,
)
from recovery_cli.handlers.redis.health import assess
from recovery_cli.handlers.redis.reconnect import (
    ReconnectParams,
    describe_clients,
    idle_clients,
    kill_clients,
    validate_reconnect_params,
)
from recovery_cli.handlers.redis.settings import RedisSettings, make_client, validate_settings

if TYPE_CHECKING:
    import redis

PROBE_STATE = "probe-state.json"
# The server answers but is in a bad state: a working connection fixes none of these.
SERVER_STATE_FAILURES = frozenset(
    {
        RedisFailure.OOM,
        RedisFailure.READONLY_REPLICA,
        RedisFailure.ACL_DENIED,
        RedisFailure.PERSISTENCE_FAILURE,
        RedisFailure.DATA_TYPE_MISMATCH,
        RedisFailure.MEMORY_NEAR_LIMIT,
        RedisFailure.REPLICA_LINK_DOWN,
    }
)
RESTORE_KEY = "strategies.restore_flushed.params"
PERSISTENCE_WARNING = (
    " Warning: the failure was persistence_failure (MISCONF). A restart clears the error but "
    "not its cause: if the disk is full, missing or read-only, saves fail again and writes stop "
    "again. Fix the disk first (see the system component's disk_pressure)."
)


class RedisHandler(BaseHandler):
    kind: ClassVar[str] = "redis"

    def __init__(self, context: ComponentContext) -> None:
        super().__init__(context)
        self.settings = RedisSettings.from_mapping(context.settings)

    @classmethod
    def validate_config(
        cls, settings: Mapping[str, Any], strategy_params: Mapping[str, Mapping[str, Any]]
    ) -> list[SettingsError]:
        errors = validate_settings(settings)
        if "flush_corrupted" in strategy_params:
            errors += validate_flush_params(strategy_params["flush_corrupted"])
        errors += validate_reconnect_params(strategy_params.get("reconnect", {}))
        errors += _validate_restore_params(strategy_params.get("restore_flushed", {}))
        errors += [
            SettingsError(f"strategies.restart_container.params.{name}", "unknown parameter")
            for name in strategy_params.get("restart_container", {})
        ]
        return errors

    def strategies(self) -> Mapping[str, Strategy]:
        return {
            "reconnect": self.reconnect,
            "flush_corrupted": self.flush_corrupted,
            "restore_flushed": self.restore_flushed,
            "restart_container": self.restart_container,
        }

    # --- probe -------------------------------------------------------------------------

    def probe(self) -> ProbeResult:
        from redis.exceptions import RedisError

        # Half the probe budget per network wait: a connect plus one read always fit in it,
        # so a frozen (SIGSTOPped) server fails the probe in time.
        with self._client(self.context.probe_timeout / 2) as client:
            started = time.monotonic()
            try:
                client.ping()
                latency_ms = (time.monotonic() - started) * 1000
                info = client.info()
                if self.settings.write_probe:
                    client.set(self.settings.write_probe_key, utc_now(), ex=30)
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

    # --- reconnect ---------------------------------------------------------------------

    def reconnect(self, ctx: StrategyContext) -> StrategyResult:
        """Wait with backoff until the server answers PING and has finished loading."""
        params = ReconnectParams.from_mapping(ctx.params)
        deadline = time.monotonic() + min(ctx.remaining(), params.max_wait_seconds)
        delay, tries = params.initial_delay, 0
        while True:
            tries += 1
            failure = self._check_ready(self._timeout(deadline))
            if failure is None:
                return self._connected(ctx, params, tries)
            if not failure.transient or ctx.dry_run:
                return _connect_failure(failure, tries, retryable=False)
            wait = (
                max(delay, params.loading_delay)
                if failure.failure is RedisFailure.LOADING
                else delay
            )
            if time.monotonic() + wait >= deadline:
                return _connect_failure(failure, tries, retryable=False)
            time.sleep(wait)
            delay = min(delay * 2, params.max_delay)

    def _connected(
        self, ctx: StrategyContext, params: ReconnectParams, tries: int
    ) -> StrategyResult:
        detail = f"{self.settings.endpoint} answers PING (after {tries} tries)"
        if ctx.failure_type in SERVER_STATE_FAILURES:
            return StrategyResult.failure(
                str(ctx.failure_type),
                f"{detail}, but {ctx.failure_type} is not a connection problem",
                tries=tries,
            )
        if ctx.failure_type != RedisFailure.MAX_CLIENTS or not params.kill_idle_clients:
            return StrategyResult.success(detail, tries=tries)
        with self._client(self._timeout(time.monotonic() + ctx.remaining())) as client:
            victims = idle_clients(client, params)
            if ctx.dry_run:
                return StrategyResult.success(
                    f"dry run: {detail}; would CLIENT KILL {len(victims)} idle clients: "
                    f"{describe_clients(victims)}",
                    tries=tries,
                )
            killed = kill_clients(client, victims)
        return StrategyResult.success(
            f"{detail}; killed {killed} idle clients: {describe_clients(victims)}",
            tries=tries,
            killed=killed,
        )

    def _check_ready(self, timeout: float) -> Classified | None:
        """None when the server answers PING and is not loading; else what is wrong."""
        from redis.exceptions import RedisError

        with self._client(timeout) as client:
            try:
                client.ping()
                loading = client.info("persistence").get("loading", 0)
            except (RedisError, OSError) as exc:
                return classify(exc)
        if loading:
            return Classified(RedisFailure.LOADING, "the server is still loading its dataset")
        return None

    # --- flush / restore ---------------------------------------------------------------

    def flush_corrupted(self, ctx: StrategyContext) -> StrategyResult:
        from redis.exceptions import RedisError

        problems = validate_flush_params(ctx.params)
        if problems:
            return StrategyResult.failure(
                "invalid_params", "; ".join(f"{p.key}: {p.message}" for p in problems)
            )
        params = FlushParams.from_mapping(ctx.params)
        before = set(list_backups(self._dir()))
        with self._client(self._timeout(time.monotonic() + ctx.remaining())) as client:
            try:
                header = self._backup_header(client, params)
                if params.mode == "expire" and _major(header["redis_version"]) < 7:
                    return StrategyResult.failure(
                        "unsupported", "mode expire needs Redis 7 (EXPIRE NX); use mode delete"
                    )
                return flush(client, params, self._ensure_dir, header, ctx.remaining, ctx.dry_run)
            except (RedisError, OSError) as exc:
                return self._flush_interrupted(classify(exc), before)

    def _flush_interrupted(self, failure: Classified, before: set[Path]) -> StrategyResult:
        written = sorted(set(list_backups(self._dir())) - before)
        note = (
            f"; backup {written[0].name} was written, restore_flushed can put its keys back"
            if written
            else ""
        )
        # Not retryable: a server that cannot be reached mid-flush needs the next strategy
        # (restart), not the same scan again; the next run flushes what is left.
        return StrategyResult.failure(
            failure.failure.value, f"flush stopped: {failure.detail}{note}"
        )

    def _backup_header(self, client: redis.Redis, params: FlushParams) -> dict[str, Any]:
        return {
            "component": self.context.name,
            "created": utc_now(),
            "endpoint": self.settings.endpoint,
            "patterns": list(params.patterns),
            "redis_version": str(client.info("server").get("redis_version", "0")),
        }

    def restore_flushed(self, ctx: StrategyContext) -> StrategyResult:
        from redis.exceptions import RedisError

        problems = _validate_restore_params(ctx.params)
        if problems:
            return StrategyResult.failure(
                "invalid_params", "; ".join(f"{p.key}: {p.message}" for p in problems)
            )
        path = self._pick_backup(ctx.params.get("backup"))
        if path is None:
            return StrategyResult.failure("no_backup", f"no flush backup in {self._dir()}")
        try:
            backup = read_backup(path)
        except (OSError, ValueError, KeyError) as exc:
            return StrategyResult.failure("invalid_backup", f"cannot read {path.name}: {exc}")
        with self._client(self._timeout(time.monotonic() + ctx.remaining())) as client:
            try:
                return restore(
                    client, backup, bool(ctx.params.get("replace_existing")), ctx.dry_run
                )
            except (RedisError, OSError) as exc:
                failure = classify(exc)
                return StrategyResult.failure(
                    failure.failure.value, f"restore stopped: {failure.detail}"
                )

    def _pick_backup(self, name: object) -> Path | None:
        if name:
            path = self._dir() / str(name)
            return path if path.is_file() else None
        backups = list_backups(self._dir())
        return backups[0] if backups else None

    # --- restart -----------------------------------------------------------------------

    def restart_container(self, ctx: StrategyContext) -> StrategyResult:
        """Restart through the shared service control, then wait for PING and loading:0."""
        warning = (
            PERSISTENCE_WARNING if ctx.failure_type == RedisFailure.PERSISTENCE_FAILURE else ""
        )
        if ctx.service is None:
            return StrategyResult.failure(
                "no_service_control", "no service: block is configured for this component"
            )
        if ctx.dry_run:
            return StrategyResult.success(
                f"dry run: would restart via {ctx.service.method}, "
                f"then wait for PING and loading:0.{warning}"
            )
        started = time.monotonic()
        restarted = ctx.service.restart(max(1.0, ctx.remaining()))
        if not restarted.ok:
            return StrategyResult.failure(
                restarted.failure_type or "restart_failed",
                f"restart via {ctx.service.method} failed: {restarted.detail}{warning}",
                retryable=restarted.retryable,
            )
        return self._wait_ready(ctx, started, warning)

    def _wait_ready(self, ctx: StrategyContext, started: float, warning: str) -> StrategyResult:
        deadline = time.monotonic() + ctx.remaining()
        pause = 0.02
        while True:
            failure = self._check_ready(self._timeout(deadline))
            waited = round(time.monotonic() - started, 3)
            if failure is None:
                return StrategyResult.success(
                    f"restarted via {ctx.service.method if ctx.service else '?'}; "
                    f"PING answered, loading:0 after {waited}s.{warning}",
                    seconds=waited,
                )
            if not failure.transient or time.monotonic() + pause >= deadline:
                return StrategyResult.failure(
                    failure.failure.value,
                    f"restarted but not ready after {waited}s: {failure.detail}.{warning}",
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    # --- preflight ---------------------------------------------------------------------

    def preflight(self, strategy: str) -> list[Check]:
        checks = [_client_library_check(), *self._credential_checks(), self._reachable_check()]
        if strategy == "flush_corrupted":
            checks += self._flush_checks()
        if strategy == "restore_flushed":
            backups = list_backups(self.context.state_dir / self.context.name)
            newest = f", newest {backups[0].name}" if backups else ""
            checks.append(Check("flush_backups", True, f"{len(backups)} flush backups{newest}"))
        return checks

    def _credential_checks(self) -> list[Check]:
        checks = []
        var = self.context.settings.get("password_env")
        if var:
            present = bool(self.context.environ.get(str(var)))
            checks.append(
                Check("password", present, f"${var} is {'set' if present else 'not set'}")
            )
        for key in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
            path = self.context.settings.get(key)
            if path:
                checks.append(Check(key, os.access(str(path), os.R_OK), f"{path} readable"))
        return checks

    def _reachable_check(self) -> Check:
        failure = self._check_ready(min(2.0, self.context.probe_timeout))
        if failure is None:
            return Check("reachable", True, f"{self.settings.endpoint} answers PING")
        # Reaching a server that reports a problem (MISCONF, OOM...) still proves the path.
        reached = failure.failure not in {
            RedisFailure.CONNECTION_FAILED,
            RedisFailure.TIMEOUT,
            RedisFailure.AUTH_FAILED,
        }
        return Check(
            "reachable", reached, f"{self.settings.endpoint}: {failure.failure}: {failure.detail}"
        )

    def _flush_checks(self) -> list[Check]:
        problems = validate_flush_params(self.context.params_for("flush_corrupted"))
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
        checks.append(Check("backup_dir_writable", writable, f"backups go to {self._dir()}"))
        return checks

    # --- plumbing ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _client(self, timeout: float) -> Iterator[redis.Redis]:
        client = make_client(self.settings, self.context, timeout)
        try:
            yield client
        finally:
            client.close()

    def _timeout(self, deadline: float) -> float:
        """Per-call socket timeout: the configured ones, but never past the step's deadline."""
        return max(0.05, min(deadline - time.monotonic(), self.settings.socket_timeout))

    def _dir(self) -> Path:
        return self.context.state_dir / self.context.name

    def _ensure_dir(self) -> Path:
        return component_dir(self.context.state_dir, self.context.name)


def _connect_failure(failure: Classified, tries: int, retryable: bool) -> StrategyResult:
    never = (
        " (not retried: a wrong password does not fix itself)"
        if failure.failure is RedisFailure.AUTH_FAILED
        else ""
    )
    return StrategyResult.failure(
        failure.failure.value,
        f"no working connection after {tries} tries: {failure.detail}{never}",
        retryable=retryable,
        tries=tries,
    )


def _loading_progress(client: redis.Redis) -> str:
    from redis.exceptions import RedisError

    try:
        info = client.info("persistence")
    except (RedisError, OSError):
        return ""
    loaded, eta = info.get("loading_loaded_perc", "?"), info.get("loading_eta_seconds", "?")
    return f" ({loaded}% loaded, eta {eta}s)"


def _validate_restore_params(params: Mapping[str, Any]) -> list[SettingsError]:
    errors = [
        SettingsError(f"{RESTORE_KEY}.{name}", "unknown parameter")
        for name in params
        if name not in {"backup", "replace_existing"}
    ]
    name = params.get("backup")
    if name is not None and (not isinstance(name, str) or "/" in name or name.startswith(".")):
        errors.append(
            SettingsError(
                f"{RESTORE_KEY}.backup", "must be a backup file name (flush-….jsonl), not a path"
            )
        )
    if not isinstance(params.get("replace_existing", False), bool):
        errors.append(SettingsError(f"{RESTORE_KEY}.replace_existing", "must be true or false"))
    return errors


def _client_library_check() -> Check:
    try:
        import redis as redis_lib
    except ImportError as exc:
        return Check("redis_client", False, f"redis-py is not installed: {exc}")
    return Check("redis_client", True, f"redis-py {redis_lib.__version__}")


def _major(version: str) -> int:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def _replace_file(path: Path, data: Mapping[str, Any]) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(data).encode())
    finally:
        os.close(fd)
    os.replace(temp, path)
