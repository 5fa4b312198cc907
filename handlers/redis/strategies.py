"""The four redis strategies, each a function of the handler and the step's context.

redis-py is imported only inside the functions that talk to the server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recovery_cli.handlers.base import StrategyContext, StrategyResult
from recovery_cli.handlers.redis.backup import list_backups, read_backup
from recovery_cli.handlers.redis.errors import Classified, RedisFailure, classify
from recovery_cli.handlers.redis.flush import (
    flush,
    restore,
)
from recovery_cli.handlers.redis.reconnect import (
    describe_clients,
    idle_clients,
    kill_clients,
)
from recovery_cli.handlers.redis.settings import FlushParams, ReconnectParams, RestoreParams
from recovery_cli.handlers.settings_models import takes
from recovery_cli.handlers.util import format_ts

if TYPE_CHECKING:
    import redis

    from recovery_cli.handlers.redis.handler import RedisHandler


# --- reconnect ---------------------------------------------------------------------


@takes(ReconnectParams)
def reconnect(
    handler: RedisHandler, ctx: StrategyContext, params: ReconnectParams
) -> StrategyResult:
    """Wait with backoff until the server answers PING and has finished loading."""
    deadline = time.monotonic() + min(ctx.remaining(), params.max_wait_seconds)
    delay, tries = params.initial_delay, 0
    while True:
        tries += 1
        failure = handler.check_ready(handler.timeout_until(deadline))
        if failure is None:
            return _connected(handler, ctx, params, tries)
        if not failure.transient or ctx.dry_run:
            return _connect_failure(failure, tries, retryable=False)
        wait = (
            max(delay, params.loading_delay) if failure.failure is RedisFailure.LOADING else delay
        )
        if time.monotonic() + wait >= deadline:
            return _connect_failure(failure, tries, retryable=False)
        time.sleep(wait)
        delay = min(delay * 2, params.max_delay)


def _connected(
    handler: RedisHandler, ctx: StrategyContext, params: ReconnectParams, tries: int
) -> StrategyResult:
    detail = f"{handler.settings.endpoint} answers PING (after {tries} tries)"
    if ctx.failure_type in SERVER_STATE_FAILURES:
        return StrategyResult.failure(
            str(ctx.failure_type),
            f"{detail}, but {ctx.failure_type} is not a connection problem",
            tries=tries,
        )
    if ctx.failure_type != RedisFailure.MAX_CLIENTS or not params.kill_idle_clients:
        return StrategyResult.success(detail, tries=tries)
    with handler.client(handler.timeout_until(time.monotonic() + ctx.remaining())) as client:
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


@takes(FlushParams)
def flush_corrupted(
    handler: RedisHandler, ctx: StrategyContext, params: FlushParams
) -> StrategyResult:
    from redis.exceptions import RedisError

    before = set(list_backups(handler.backup_dir()))
    with handler.client(handler.timeout_until(time.monotonic() + ctx.remaining())) as client:
        try:
            header = _backup_header(handler, client, params)
            if params.mode == "expire" and _major(header["redis_version"]) < 7:
                return StrategyResult.failure(
                    "unsupported", "mode expire needs Redis 7 (EXPIRE NX); use mode delete"
                )
            return flush(
                client,
                params,
                handler.ensure_backup_dir,
                header,
                ctx.remaining,
                ctx.dry_run,
                handler.context.now(),
            )
        except (RedisError, OSError) as exc:
            return _flush_interrupted(handler, classify(exc), before)


def _flush_interrupted(
    handler: RedisHandler, failure: Classified, before: set[Path]
) -> StrategyResult:
    written = sorted(set(list_backups(handler.backup_dir())) - before)
    note = (
        f"; backup {written[0].name} was written, restore_flushed can put its keys back"
        if written
        else ""
    )
    # Not retryable: a server that cannot be reached mid-flush needs the next strategy
    # (restart), not the same scan again; the next run flushes what is left.
    return StrategyResult.failure(failure.failure.value, f"flush stopped: {failure.detail}{note}")


def _backup_header(
    handler: RedisHandler, client: redis.Redis, params: FlushParams
) -> dict[str, Any]:
    return {
        "component": handler.context.name,
        "created": format_ts(handler.context.now()),
        "endpoint": handler.settings.endpoint,
        "patterns": list(params.patterns),
        "redis_version": str(client.info("server").get("redis_version", "0")),
    }


@takes(RestoreParams)
def restore_flushed(
    handler: RedisHandler, ctx: StrategyContext, params: RestoreParams
) -> StrategyResult:
    from redis.exceptions import RedisError

    path = _pick_backup(handler, params.backup)
    if path is None:
        return StrategyResult.failure("no_backup", f"no flush backup in {handler.backup_dir()}")
    try:
        backup = read_backup(path)
    except (OSError, ValueError, KeyError) as exc:
        return StrategyResult.failure("invalid_backup", f"cannot read {path.name}: {exc}")
    with handler.client(handler.timeout_until(time.monotonic() + ctx.remaining())) as client:
        try:
            return restore(client, backup, params.replace_existing, ctx.dry_run)
        except (RedisError, OSError) as exc:
            failure = classify(exc)
            return StrategyResult.failure(
                failure.failure.value, f"restore stopped: {failure.detail}"
            )


def _pick_backup(handler: RedisHandler, name: object) -> Path | None:
    if name:
        path = handler.backup_dir() / str(name)
        return path if path.is_file() else None
    backups = list_backups(handler.backup_dir())
    return backups[0] if backups else None


# --- restart -----------------------------------------------------------------------


def restart_container(handler: RedisHandler, ctx: StrategyContext) -> StrategyResult:
    """Restart through the shared service control, then wait for PING and loading:0."""
    warning = PERSISTENCE_WARNING if ctx.failure_type == RedisFailure.PERSISTENCE_FAILURE else ""
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
    return _wait_ready(handler, ctx, started, warning)


def _wait_ready(
    handler: RedisHandler, ctx: StrategyContext, started: float, warning: str
) -> StrategyResult:
    deadline = time.monotonic() + ctx.remaining()
    pause = 0.02
    while True:
        failure = handler.check_ready(handler.timeout_until(deadline))
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

PERSISTENCE_WARNING = (
    " Warning: the failure was persistence_failure (MISCONF). A restart clears the error but "
    "not its cause: if the disk is full, missing or read-only, saves fail again and writes stop "
    "again. Fix the disk first (see the system component's disk_pressure)."
)


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


def _major(version: str) -> int:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0
