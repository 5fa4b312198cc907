"""The chromadb strategies. Each takes the handler and the step's StrategyContext and
returns a StrategyResult; with ``ctx.dry_run`` it changes nothing and says what it would do.

Anything that stops or starts the server goes through ``ctx.service``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recovery_cli.handlers.base import LOST, WOULD_LOSE, Loss, StrategyContext, StrategyResult
from recovery_cli.handlers.chromadb.loss import UNDO, Delta, compare
from recovery_cli.handlers.chromadb.offline import (
    CollectionInfo,
    OfflineReport,
    inspect_directory,
)
from recovery_cli.handlers.chromadb.probe import (
    CollectionState,
    classify_error,
    http_get,
    run_child,
)
from recovery_cli.handlers.chromadb.settings import (
    CollectionReloadParams,
    IndexRebuildParams,
    QueryRetryParams,
    SnapshotParams,
    SnapshotRollbackParams,
)
from recovery_cli.handlers.chromadb.snapshot import (
    Snapshot,
    chromadb_version,
    create_snapshot,
    directory_size,
    prune,
    quarantine_entry,
    restore_directory,
    restore_segment,
    select_snapshot,
    verify_snapshot,
)
from recovery_cli.handlers.settings_models import takes
from recovery_cli.handlers.util import file_stamp, private_dir

if TYPE_CHECKING:
    from recovery_cli.handlers.chromadb.handler import ChromaHandler

TRANSIENT = frozenset({"server_unreachable", "not_ready", "probe_timeout"})
REBUILDABLE = frozenset(
    {
        "hnsw_load_error",
        "hnsw_data_corrupt",
        "hnsw_graph_corrupt",
        "hnsw_missing_silent",
        "probe_crashed",
    }
)
SPACE_MARGIN = 1.1
# What the core's service control reports when the process started but the probe is not
# healthy yet (recovery_cli/service.py).
STARTED_NOT_HEALTHY = "restart_timeout"
# every rebuild path keeps every record: the WAL holds them all, the snapshot's segment is
# at the index's own sequence number (the WAL replays the rest), or the copy keeps the old one
REBUILD_LOSES_NOTHING = Loss("nothing: every record stays (WAL, snapshot segment or copy)", 0)
WORK_DIR = "work"  # below the component's own dir: replay files, salvaged sqlite copies
LOST_IDS = "LOST_IDS.txt"  # in the quarantine: every id a rollback could not replay


def _deadline(ctx: StrategyContext) -> float:
    return time.monotonic() + ctx.remaining()


# -- query_retry -------------------------------------------------------------------------


@takes(QueryRetryParams)
def query_retry(
    handler: ChromaHandler, ctx: StrategyContext, params: QueryRetryParams
) -> StrategyResult:
    """Re-run the probe with backoff while the failure is a transport one; a corruption is
    never retried (it will not heal) and is handed on to the next step."""
    attempts, delay, max_delay = params.attempts, params.initial_delay, params.max_delay
    if ctx.dry_run:
        return StrategyResult.success(
            f"would re-probe up to {attempts} times with backoff from {delay}s"
        )
    result = None
    for attempt in range(1, attempts + 1):
        budget = min(handler.context.probe_timeout, ctx.remaining())
        result = handler.probe_until(time.monotonic() + budget)
        if result.healthy:
            return StrategyResult.success(f"answered on try {attempt}", tries=attempt)
        if result.failure_type not in TRANSIENT:
            detail = f"{result.failure_type} is not transient, not retried: {result.detail}"
            return StrategyResult.failure(str(result.failure_type), detail, tries=attempt)
        pause = min(delay * 2 ** (attempt - 1), max_delay) * random.uniform(0.8, 1.2)
        if attempt < attempts and ctx.remaining() > pause:
            time.sleep(pause)
    assert result is not None
    detail = f"still {result.failure_type} after {attempts} tries: {result.detail}"
    return StrategyResult.failure(str(result.failure_type), detail, tries=attempts)


# -- server control through ctx.service ---------------------------------------------------


def stop_server(handler: ChromaHandler, ctx: StrategyContext) -> StrategyResult | None:
    """None when the server is stopped (or there is none: embedded)."""
    if handler.settings.embedded:
        return None
    if ctx.service is None:
        return StrategyResult.failure(
            "no_service_control", "this step needs the server stopped: configure a service: block"
        )
    result = ctx.service.stop(max(ctx.remaining(), 1.0))
    return None if result.ok else StrategyResult.failure("stop_failed", f"stop: {result.detail}")


def start_server(
    handler: ChromaHandler, ctx: StrategyContext, restart: bool = False
) -> StrategyResult | None:
    """Start (or restart) through the service and wait for a heartbeat; None when it answers."""
    if handler.settings.embedded:
        return None
    if ctx.service is None:
        return StrategyResult.failure(
            "no_service_control", "no service: block to start the server with"
        )
    action = ctx.service.restart if restart else ctx.service.start
    result = action(max(ctx.remaining(), 1.0))
    answering = wait_for_heartbeat(handler, time.monotonic() + min(5.0, ctx.remaining()))
    if result.ok or (result.failure_type == STARTED_NOT_HEALTHY and answering is None):
        # A service may report "started but not healthy": the step's own checks judge that.
        return answering
    return StrategyResult.failure("start_failed", f"{ctx.service.method}: {result.detail}")


def wait_for_heartbeat(handler: ChromaHandler, deadline: float) -> StrategyResult | None:
    url = f"{handler.settings.url}/api/v2/heartbeat"
    while True:
        answer = http_get(url, min(1.0, max(0.05, deadline - time.monotonic())))
        if answer.status == 200:
            return None
        if time.monotonic() >= deadline:
            return StrategyResult.failure(
                "server_unreachable", f"no heartbeat after start: {answer.error}"
            )
        time.sleep(0.1)


# -- collection_reload --------------------------------------------------------------------


@takes(CollectionReloadParams)
def collection_reload(
    handler: ChromaHandler, ctx: StrategyContext, params: CollectionReloadParams
) -> StrategyResult:
    """Restart a server that does not answer (through ctx.service), then re-resolve every
    configured collection in a fresh client and report ids that changed."""
    restarted = False
    if not handler.settings.embedded:
        state = handler.server_state(_deadline(ctx))
        if state is not None:
            blocked = _restart_refusal(state.failure_type, ctx, params.restart)
            if blocked is not None:
                return blocked
            if ctx.dry_run:
                return StrategyResult.success(
                    f"would restart the server through {_method(ctx)} ({state.failure_type}) "
                    f"and re-resolve {len(handler.settings.collections)} collections"
                )
            failed = start_server(handler, ctx, restart=True)
            if failed is not None:
                return failed
            restarted = True
    if ctx.dry_run:
        return StrategyResult.success(
            f"would re-resolve {len(handler.settings.collections)} collections"
        )
    return _resolve(handler, ctx, restarted)


def _method(ctx: StrategyContext) -> str:
    return ctx.service.method if ctx.service else "-"


def _restart_refusal(
    failure_type: str | None, ctx: StrategyContext, restart: bool
) -> StrategyResult | None:
    if failure_type not in TRANSIENT:
        return StrategyResult.failure(str(failure_type), "a restart does not fix this; escalating")
    if not restart or ctx.service is None:
        return StrategyResult.failure(
            str(failure_type), "the server does not answer and no service control is configured"
        )
    return None


def _resolve(handler: ChromaHandler, ctx: StrategyContext, restarted: bool) -> StrategyResult:
    request = {
        **handler.settings.client_request(),
        "op": "resolve",
        "collections": list(handler.settings.collections),
    }
    outcome = run_child(request, ctx.remaining())
    if outcome.failure_type is not None:
        return StrategyResult.failure(outcome.failure_type, outcome.detail, restarted=restarted)
    if "error" in outcome.answer:
        failure = classify_error(outcome.answer.get("error_type", ""), outcome.answer["error"])
        return StrategyResult.failure(failure, outcome.answer["error"], restarted=restarted)
    ids: dict[str, str | None] = outcome.answer["ids"]
    before = handler.remembered_ids()
    changed = {
        n: {"from": before[n], "to": i} for n, i in ids.items() if i and before.get(n, i) != i
    }
    handler.remember_ids({n: i for n, i in ids.items() if i})
    missing = sorted(n for n, i in ids.items() if i is None)
    prefix = "restarted the server; " if restarted else ""
    changes = "".join(f"; {n}: id changed {c['from']} -> {c['to']}" for n, c in changed.items())
    if missing:
        detail = f"{prefix}collections missing: {', '.join(missing)}{changes}"
        return StrategyResult.failure(
            "collection_missing", detail, missing=missing, changed=changed
        )
    detail = f"{prefix}{len(ids)} collections resolved{changes}"
    return StrategyResult.success(detail, restarted=restarted, changed=changed, ids=ids)


# -- snapshot -----------------------------------------------------------------------------


def _persist_dir(handler: ChromaHandler) -> Path | StrategyResult:
    directory = handler.settings.persist_directory
    if directory is None:
        return StrategyResult.failure(
            "not_configured", "this step needs settings.persist_directory"
        )
    return directory


@takes(SnapshotParams)
def snapshot(
    handler: ChromaHandler, ctx: StrategyContext, params: SnapshotParams
) -> StrategyResult:
    """Probe (its self-recall sample goes into the manifest), stop, copy sqlite (backup API)
    and the segment directories, check every index graph in the copy, write the manifest,
    publish with one rename, start; then apply the retention, which always spares the
    newest verified snapshot."""
    directory = _persist_dir(handler)
    if isinstance(directory, StrategyResult):
        return directory
    recall = _probe_first(handler, ctx, params.require_healthy)
    if isinstance(recall, StrategyResult):
        return recall
    short = _space_problem(directory, handler.snapshot_root)
    if short:
        return StrategyResult.failure("insufficient_space", short)
    keep = params.keep
    if ctx.dry_run:
        return StrategyResult.success(
            f"would stop the server, snapshot {directory} into {handler.snapshot_root}, keep {keep}"
        )
    started = time.monotonic()
    made = _snapshot_stopped(handler, ctx, directory, recall)
    if isinstance(made, StrategyResult):
        return made
    pruned = prune(handler.snapshot_root, keep, handler.context.now())
    seconds = round(time.monotonic() - started, 3)
    detail = (
        f"snapshot {made.name}: {len(made.manifest['files'])} files, {_counts_text(made.counts())}"
        + ("" if made.verified else "; not verified (the probe before it was not healthy)")
    )
    return StrategyResult.success(
        detail,
        snapshot=made.name,
        seconds=seconds,
        counts=made.counts(),
        pruned=pruned,
        verified=made.verified,
        bytes=sum(f["size"] for f in made.manifest["files"].values()),
    )


def _probe_first(
    handler: ChromaHandler, ctx: StrategyContext, require_healthy: bool
) -> dict[str, Any] | StrategyResult:
    """The self-recall record for the manifest, or the refusal of an unhealthy store."""
    state = handler.probe_until(
        time.monotonic() + min(handler.context.probe_timeout, ctx.remaining())
    )
    if require_healthy and not state.healthy:
        detail = (
            f"not snapshotting an unhealthy store ({state.failure_type}): "
            "it would become a rollback target"
        )
        return StrategyResult.failure("snapshot_refused", detail)
    return {"sampled": int(state.metrics.get("recall_sampled", 0)), "ok": state.healthy}


def _snapshot_stopped(
    handler: ChromaHandler, ctx: StrategyContext, directory: Path, recall: Mapping[str, Any]
) -> Snapshot | StrategyResult:
    from recovery_cli.handlers.chromadb.snapshot import DamagedIndex

    stopped = stop_server(handler, ctx)
    if stopped is not None:
        return stopped
    made: Snapshot | StrategyResult
    try:
        offline = inspect_directory(directory, handler.settings.collections)
        if offline.failure_type is not None:
            made = StrategyResult.failure(
                "snapshot_refused", f"offline check failed: {offline.detail}"
            )
        else:
            made = create_snapshot(
                directory, handler.snapshot_root, _facts(offline), handler.context.now(), recall
            )
    except DamagedIndex as exc:
        made = StrategyResult.failure(
            "snapshot_refused", f"index graph damaged in the copy, nothing published: {exc}"
        )
    finally:
        restarted = start_server(handler, ctx)
    if restarted is not None:
        return restarted
    return made


def _facts(offline: OfflineReport) -> dict[str, Any]:
    collections = {
        name: {
            "id": c.id,
            "count": c.count,
            "dimension": c.dimension,
            "vector_segment": c.vector_segment,
        }
        for name, c in offline.collections.items()
    }
    return {
        "collections": collections,
        "wal": {"rows": offline.wal_rows, "auto_purge": offline.auto_purge},
    }


def _space_problem(directory: Path, root: Path) -> str:
    anchor = root
    while not anchor.exists():
        anchor = anchor.parent
    need = int(directory_size(directory) * SPACE_MARGIN)
    free = shutil.disk_usage(anchor).free
    return "" if free > need else f"snapshot needs about {need} bytes, {free} free under {anchor}"


def _counts_text(counts: Mapping[str, int]) -> str:
    return (
        ", ".join(f"{name}={count}" for name, count in sorted(counts.items())) or "no collections"
    )


# -- snapshot_rollback --------------------------------------------------------------------


@takes(SnapshotRollbackParams)
def snapshot_rollback(
    handler: ChromaHandler, ctx: StrategyContext, params: SnapshotRollbackParams
) -> StrategyResult:
    """Restore the newest intact snapshot taken with this chromadb version. The current
    directory is moved to a quarantine next to it, never deleted."""
    directory = _persist_dir(handler)
    if isinstance(directory, StrategyResult):
        return directory
    chosen, skipped = select_snapshot(handler.snapshot_root, chromadb_version())
    if chosen is None:
        reasons = "; ".join(skipped[:5]) or f"none under {handler.snapshot_root}"
        return StrategyResult.failure(
            "no_valid_snapshot", f"no restorable snapshot: {reasons}", skipped=skipped[:10]
        )
    quarantine = directory.with_name(
        f"{directory.name}.quarantine-{file_stamp(handler.context.now())}"
    )
    # a dry run leaves the state dir as it is: a salvage copy goes to the system's temp dir
    workdir = None if ctx.dry_run else handler.own_dir / WORK_DIR
    delta = compare(directory, chosen.data, chosen.name, workdir)
    would_lose = delta.would_lose()
    if ctx.dry_run:
        return StrategyResult.success(
            f"would stop the server, move {directory} to a quarantine, restore {chosen.name} "
            f"({_counts_text(chosen.counts())}), replay the WAL and start; discards "
            f"{would_lose.summary}",
            snapshot=chosen.name,
            skipped=skipped[:10],
            **{WOULD_LOSE: would_lose.to_data()},
        )
    started = time.monotonic()
    stopped = stop_server(handler, ctx)
    if stopped is not None:
        return stopped
    moved = restore_directory(chosen, directory, quarantine, handler.context.now())
    # From here on the store is the snapshot's: nothing may raise (a step that raises is
    # retried, and a second rollback would bury the first quarantine), and whatever
    # happens, what the replay did not bring back is reported.
    failed = start_server(handler, ctx)
    replay = _replay(handler, ctx, delta) if params.replay else Replayed({}, "replay is off")
    lost = _lost(delta, replay, moved)
    facts: dict[str, Any] = {
        "snapshot": chosen.name,
        "quarantine": str(moved) if moved else None,
        "skipped": skipped[:10],
        WOULD_LOSE: would_lose.to_data(),
        "replayed": replay.counts(),
        LOST: lost.to_data(),
    }
    if failed is not None:
        detail = f"{failed.detail}; {lost.summary}"
        return StrategyResult.failure(str(failed.failure_type), detail, **facts)
    expected = _expected_counts(chosen, delta, replay)
    mismatch = _verify_counts(handler, ctx, expected) if params.verify_counts else ""
    if mismatch:
        return StrategyResult.failure("verify_failed", mismatch, **facts)
    seconds = round(time.monotonic() - started, 3)
    counts = _counts_text(expected)
    detail = (
        f"restored {chosen.name} and replayed {sum(replay.counts().values())} changes "
        f"({counts}); {lost.summary}; previous directory kept at {moved}"
    )
    return StrategyResult.success(detail, seconds=seconds, counts=expected, **facts)


@dataclass(frozen=True)
class Replayed:
    applied: dict[str, list[str]]  # collection -> ids whose changes were applied
    error: str = ""

    def counts(self) -> dict[str, int]:
        return {name: len(ids) for name, ids in self.applied.items()}


def _replay(handler: ChromaHandler, ctx: StrategyContext, delta: Delta) -> Replayed:
    """Re-add, update and delete in the restored store what the replaced one's WAL holds
    since the snapshot. The changes go to the child through a private file."""
    work = {
        name: {"create": c.new, "changes": c.replay_plan()}
        for name, c in delta.collections.items()
        if c.replay_plan()
    }
    if not work:
        return Replayed({})
    try:
        return _run_replay(handler, ctx, work)
    except Exception as exc:  # a full or unsafe state dir: reported as lost, never raised
        return Replayed({}, f"{type(exc).__name__}: {exc}")


def _run_replay(handler: ChromaHandler, ctx: StrategyContext, work: dict[str, Any]) -> Replayed:
    directory = private_dir(handler.own_dir / WORK_DIR, parents=True)
    changes = directory / f"replay-{file_stamp(handler.context.now())}.json"
    fd = os.open(changes, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(work, handle)
        request = {**handler.settings.client_request(), "op": "replay", "changes": str(changes)}
        outcome = run_child(request, ctx.remaining())
    finally:
        changes.unlink(missing_ok=True)
    if outcome.failure_type is not None or "error" in outcome.answer:
        return Replayed({}, outcome.detail or str(outcome.answer.get("error")))
    applied: dict[str, list[str]] = outcome.answer["applied"]
    return Replayed(applied)


def _lost(delta: Delta, replay: Replayed, quarantine: Path | None) -> Loss:
    """What the rollback discarded that the replay did not bring back."""
    where = str(quarantine) if quarantine else None
    if delta.unreadable:
        return Loss(delta.would_lose().summary, None, where=where, undo=UNDO)
    lost = [
        f"{name}/{i}"
        for name, c in delta.collections.items()
        for i in c.missing
        if i not in set(replay.applied.get(name, ()))
    ]
    why = f" (replay failed: {replay.error})" if replay.error else ""
    summary = f"{len(lost)} of {len(delta.missing)} newer records not replayed{why}"
    if lost and quarantine is not None:
        summary += f"; every id in {quarantine / LOST_IDS}"
        _write_lost_ids(quarantine / LOST_IDS, sorted(lost))
    return Loss(summary, len(lost), tuple(sorted(lost)), where=where, undo=UNDO if lost else "")


def _write_lost_ids(path: Path, ids: list[str]) -> None:
    """The full list beside what it lost (the audit keeps the first ids only)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("".join(f"{i}\n" for i in ids))


def _expected_counts(chosen: Snapshot, delta: Delta, replay: Replayed) -> dict[str, int]:
    expected = dict(chosen.counts())
    for name, c in delta.collections.items():
        if name in expected:
            expected[name] = c.expected_count(set(replay.applied.get(name, ())))
    return expected


def _verify_counts(handler: ChromaHandler, ctx: StrategyContext, expected: dict[str, int]) -> str:
    names = [n for n in handler.settings.collections if n in expected] or sorted(expected)
    if not names:
        return ""
    request = {**handler.settings.client_request(), "op": "counts", "collections": names}
    outcome = run_child(request, ctx.remaining())
    if outcome.failure_type is not None or "error" in outcome.answer:
        return f"could not count after restore: {outcome.detail or outcome.answer.get('error')}"
    counts: dict[str, int] = outcome.answer["counts"]
    wrong = [
        f"{n}: {counts.get(n)} != {expected[n]}" for n in names if counts.get(n) != expected[n]
    ]
    return ("counts differ from the snapshot plus the replay: " + "; ".join(wrong)) if wrong else ""


# -- index_rebuild ------------------------------------------------------------------------


@dataclass(frozen=True)
class RebuildPlan:
    name: str
    path: str | None  # copy | wal | snapshot; None: refused
    reason: str
    segment: str | None = None
    source: Snapshot | None = None


@takes(IndexRebuildParams)
def index_rebuild(
    handler: ChromaHandler, ctx: StrategyContext, params: IndexRebuildParams
) -> StrategyResult:
    """Rebuild each damaged collection's vector index by the first path still open:
    WAL replay (the WAL holds every record), or that segment from the newest snapshot.
    With no damage, copy every record into a fresh collection (the index is readable)."""
    directory = _persist_dir(handler)
    if isinstance(directory, StrategyResult):
        return directory
    survey = survey_collections(handler, _deadline(ctx))
    if isinstance(survey, StrategyResult):
        return survey
    allowed = params.paths
    damaged = [c for c in survey if c.failure_type is not None]
    if not damaged:
        return _copy_rebuild(handler, ctx, survey, params)
    plans = plan_rebuild(handler, directory, damaged, allowed)
    data: dict[str, Any] = {
        "plan": [{"collection": p.name, "path": p.path, "reason": p.reason} for p in plans],
        WOULD_LOSE: REBUILD_LOSES_NOTHING.to_data(),
    }
    summary = "; ".join(f"{p.name}: {p.path or 'refused'} ({p.reason})" for p in plans)
    runnable = [p for p in plans if p.path]
    if ctx.dry_run or not runnable:
        if not runnable:
            return StrategyResult.failure(
                "rebuild_impossible", f"no rebuild path: {summary}", **data
            )
        return StrategyResult.success(f"would rebuild: {summary}", **data)
    started = time.monotonic()
    failed = _execute(handler, ctx, directory, runnable)
    if failed is not None:
        return StrategyResult.failure(
            str(failed.failure_type), f"{failed.detail}; plan: {summary}", **data
        )
    data["seconds"] = round(time.monotonic() - started, 3)
    if len(runnable) < len(plans):
        return StrategyResult.failure("rebuild_impossible", f"partly rebuilt: {summary}", **data)
    return StrategyResult.success(f"rebuilt: {summary}", **data)


def survey_collections(
    handler: ChromaHandler, deadline: float
) -> list[CollectionState] | StrategyResult:
    """Which configured collections are damaged, and how."""
    if not handler.settings.embedded:
        state = handler.server_state(deadline)
        if state is not None:
            if state.failure_type == "hnsw_missing_silent":
                offline = inspect_directory(
                    _must(handler.settings.persist_directory), handler.settings.collections
                )
                return [
                    CollectionState(n, "hnsw_missing_silent", offline.detail)
                    for n in offline.missing_index
                ]
            return StrategyResult.failure(
                str(state.failure_type), f"index_rebuild cannot act on this: {state.detail}"
            )
    deep = handler.deep_probe(deadline)
    if deep.failure_type is None:
        return list(deep.collections)
    # The probe of all collections died (a crash or a hang): probe them one at a time to
    # find the culprit instead of touching healthy collections.
    return [_probe_alone(handler, name, deadline) for name in handler.settings.collections]


def _probe_alone(handler: ChromaHandler, name: str, deadline: float) -> CollectionState:
    single = type(handler)(handler.context)
    single.settings = handler.settings.model_copy(update={"collections": (name,)})
    deep = single.deep_probe(deadline)
    if deep.failure_type is not None:
        return CollectionState(name, deep.failure_type, deep.detail)
    return deep.collections[0]


def _must(path: Path | None) -> Path:
    assert path is not None
    return path


def plan_rebuild(
    handler: ChromaHandler,
    directory: Path,
    damaged: list[CollectionState],
    allowed: tuple[str, ...],
) -> list[RebuildPlan]:
    offline = inspect_directory(directory, handler.settings.collections)
    newest, _ = select_snapshot(handler.snapshot_root, chromadb_version())
    taken = inspect_directory(newest.data, ()) if newest is not None else None
    return [_plan_one(c, offline, newest, allowed, taken) for c in damaged]


def _plan_one(
    state: CollectionState,
    offline: OfflineReport,
    newest: Snapshot | None,
    allowed: tuple[str, ...],
    taken: OfflineReport | None = None,
) -> RebuildPlan:
    name = state.name
    if state.failure_type not in REBUILDABLE:
        return RebuildPlan(name, None, f"{state.failure_type} is not an index problem")
    info = offline.collections.get(name)
    if info is None or info.vector_segment is None:
        return RebuildPlan(name, None, "collection or its vector segment is not in the sysdb")
    if "wal" in allowed and offline.wal_covers(name):
        return RebuildPlan(name, "wal", f"WAL holds all {info.count} records", info.vector_segment)
    if "snapshot" not in allowed:
        return RebuildPlan(name, None, "WAL purged and the snapshot path is not allowed")
    then = taken.collections.get(name) if taken is not None else None
    return _snapshot_plan(name, info, newest, then)


def _snapshot_plan(
    name: str, info: CollectionInfo, newest: Snapshot | None, then: CollectionInfo | None
) -> RebuildPlan:
    """The segment from the newest snapshot, when it holds every write the index needs:
    the index on disk was not flushed since (same sequence number: Chroma replays the WAL
    after it), or, for a snapshot whose sequence number is unknown, the same count."""
    segment = str(info.vector_segment)
    if newest is None:
        return RebuildPlan(name, None, "WAL purged (automatically_purge on) and no intact snapshot")
    entry = newest.manifest.get("collections", {}).get(name, {})
    if entry.get("vector_segment") != segment:
        return RebuildPlan(name, None, f"snapshot {newest.name} holds another segment for {name}")
    refused = _snapshot_behind(name, info, newest, entry, then)
    if refused is not None:
        return refused
    if verify_snapshot(newest, only=segment):
        return RebuildPlan(name, None, f"snapshot {newest.name}: segment fails its checksum")
    return RebuildPlan(name, "snapshot", f"segment from snapshot {newest.name}", segment, newest)


def _snapshot_behind(
    name: str,
    info: CollectionInfo,
    newest: Snapshot,
    entry: Mapping[str, Any],
    then: CollectionInfo | None,
) -> RebuildPlan | None:
    """Why the snapshot's segment would miss writes; None when it misses none."""
    if then is not None and then.vector_seq is not None and info.vector_seq is not None:
        if then.vector_seq == info.vector_seq:
            return None
        reason = (
            f"the index was flushed after snapshot {newest.name} (sequence {then.vector_seq} "
            f"then, {info.vector_seq} now) and the WAL is purged: records written since "
            "would be missing from the index"
        )
        return RebuildPlan(name, None, reason)
    if entry.get("count") != info.count:
        reason = (
            f"snapshot {newest.name} has {entry.get('count')} records, the collection "
            f"{info.count}: records written since would be missing from the index"
        )
        return RebuildPlan(name, None, reason)
    return None


def _execute(
    handler: ChromaHandler, ctx: StrategyContext, directory: Path, plans: list[RebuildPlan]
) -> StrategyResult | None:
    stopped = stop_server(handler, ctx)
    if stopped is not None:
        return stopped
    quarantine = directory.with_name(
        f"{directory.name}.quarantine-{file_stamp(handler.context.now())}"
    )
    try:
        for plan in plans:
            segment = _must_segment(plan)
            if plan.path == "wal":
                quarantine_entry(directory / segment, quarantine)  # Chroma replays the WAL on load
            else:
                assert plan.source is not None
                restore_segment(plan.source, segment, directory, quarantine, handler.context.now())
    finally:
        failed = start_server(handler, ctx)
    return failed


def _must_segment(plan: RebuildPlan) -> str:
    assert plan.segment is not None
    return plan.segment


def _copy_rebuild(
    handler: ChromaHandler,
    ctx: StrategyContext,
    survey: list[CollectionState],
    params: IndexRebuildParams,
) -> StrategyResult:
    names = list(params.collections or [c.name for c in survey])
    if "copy" not in params.paths:
        return StrategyResult.failure(
            "rebuild_impossible", "no damaged index found and the copy path is not allowed"
        )
    if ctx.dry_run:
        return StrategyResult.success(
            f"indexes readable: would copy {', '.join(names)} into fresh collections",
            **{WOULD_LOSE: REBUILD_LOSES_NOTHING.to_data()},
        )
    started, copied = time.monotonic(), dict[str, Any]()
    for name in names:
        request = {
            **handler.settings.client_request(),
            "op": "copy",
            "name": name,
            "keep_as": f"{name}-pre-rebuild-{file_stamp(handler.context.now())}",
            "batch_size": params.batch_size,
        }
        outcome = run_child(request, ctx.remaining())
        if outcome.failure_type is not None or "error" in outcome.answer:
            detail = outcome.detail or str(outcome.answer.get("error"))
            return StrategyResult.failure(
                "rebuild_failed", f"copy of {name}: {detail}", copied=copied
            )
        copied[name] = outcome.answer
    seconds = round(time.monotonic() - started, 3)
    detail = "; ".join(
        f"{n}: copied {a['copied']} records into {a['new_id']}, old kept as {a['old_id']}"
        for n, a in copied.items()
    )
    return StrategyResult.success(
        f"path copy: {detail}", path="copy", copied=copied, seconds=seconds
    )
