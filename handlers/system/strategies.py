"""The ``system`` kind's strategies and their preflight checks."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recovery_cli.handlers.base import Check, StrategyContext, StrategyResult
from recovery_cli.handlers.settings_models import takes
from recovery_cli.handlers.system import cleanup
from recovery_cli.handlers.system import procs as system_procs
from recovery_cli.handlers.system.procs import ProcessSpec
from recovery_cli.handlers.system.settings import (
    DiskCleanupParams,
    FileHandleCleanupParams,
    MemoryGcParams,
    ProcessRestartParams,
)
from recovery_cli.handlers.util import private_dir, run_command, trim

if TYPE_CHECKING:
    from recovery_cli.handlers.system.handler import SystemHandler

DROP_CACHES = Path("/proc/sys/vm/drop_caches")
LISTED_IN_DETAIL = 20


# --------------------------------------------------------------------------- disk_cleanup


@takes(DiskCleanupParams)
def disk_cleanup(
    handler: SystemHandler, ctx: StrategyContext, params: DiskCleanupParams
) -> StrategyResult:
    roots = list(params.roots)
    deadline = time.monotonic() + ctx.remaining()
    report = cleanup.clean(
        roots,
        params.rules(),
        dry_run=ctx.dry_run,
        deadline=deadline,
        now=handler.context.now(),
    )
    data: dict[str, Any] = report.as_data()
    if report.refused and len(report.refused) >= len(roots):
        reasons = "; ".join(report.refused.values())
        return StrategyResult.failure("unsafe_root", f"refused every root: {reasons}", **data)
    verb = "would remove" if ctx.dry_run else "removed"
    listed = ", ".join(f"{r.path} ({r.size} B)" for r in report.removed[:LISTED_IN_DETAIL])
    more = len(report.removed) - LISTED_IN_DETAIL
    detail = f"{verb} {len(report.removed)} files, {report.bytes_freed} B under {', '.join(roots)}"
    if listed:
        detail += f": {listed}" + (f" and {more} more (see data.removed)" if more > 0 else "")
    if report.refused:
        detail += "; refused: " + "; ".join(report.refused.values())
    return StrategyResult.success(detail, **data)


def preflight_cleanup(handler: SystemHandler) -> list[Check]:
    params = DiskCleanupParams.model_validate(handler.context.params_for("disk_cleanup"))
    checks = []
    for root in params.roots:
        try:
            fd = cleanup.open_root(str(root))
        except cleanup.UnsafeRoot as exc:
            checks.append(Check(f"root {root}", False, str(exc)))
            continue
        os.close(fd)
        writable = os.access(str(root), os.W_OK)
        checks.append(
            Check(
                f"root {root}",
                writable,
                "safe to walk" if writable else "not writable",
            )
        )
    checks.append(_proc_check())
    return checks


def _proc_check() -> Check:
    readable = os.access("/proc/self/fdinfo", os.R_OK) and os.access("/proc/locks", os.R_OK)
    return Check(
        "proc readable", readable, "/proc fdinfo and locks" if readable else "/proc not readable"
    )


# --------------------------------------------------------------------------- memory_gc


@takes(MemoryGcParams)
def memory_gc(
    handler: SystemHandler, ctx: StrategyContext, params: MemoryGcParams
) -> StrategyResult:
    import psutil

    before = psutil.virtual_memory().available
    actions = [
        _reclaim(spec, ctx)
        for spec in handler.processes
        if spec.reclaim_signal or spec.reclaim_command
    ]
    if params.drop_page_cache:
        actions.append(_drop_page_cache(ctx.dry_run))
    if not actions:
        return StrategyResult.failure(
            "not_configured",
            "no process has a reclaim signal or command, and drop_page_cache is off",
        )
    if not ctx.dry_run:
        time.sleep(min(params.settle_seconds, ctx.remaining()))
    after = psutil.virtual_memory().available
    detail = f"{'; '.join(actions)}; available {before} B -> {after} B"
    return StrategyResult.success(
        detail, available_before=before, available_after=after, actions=actions
    )


def _reclaim(spec: ProcessSpec, ctx: StrategyContext) -> str:
    import psutil

    procs = system_procs.find(spec)
    if not procs:
        return f"{spec.name}: not running"
    if ctx.dry_run:
        how = spec.reclaim_signal or " ".join(spec.reclaim_command or ())
        return f"{spec.name}: would send {how} to pid {', '.join(str(p.pid) for p in procs)}"
    if spec.reclaim_command:
        outcome = run_command(
            spec.reclaim_command, max(1.0, ctx.remaining() / 2), env=ctx.component.environ
        )
        return f"{spec.name}: {spec.reclaim_command[0]} exited {outcome.returncode}"
    sent = []
    for proc in procs:
        try:
            system_procs.send_reclaim_signal(proc, str(spec.reclaim_signal))
            sent.append(str(proc.pid))
        except psutil.Error as exc:
            sent.append(f"{proc.pid} ({type(exc).__name__})")
    return f"{spec.name}: sent {spec.reclaim_signal} to pid {', '.join(sent)}"


def _drop_page_cache(dry_run: bool) -> str:
    if os.geteuid() != 0:
        return "page cache: not dropped (needs root)"
    if dry_run:
        return "page cache: would sync and drop (clean pages only, no data lost)"
    os.sync()  # dirty pages are written first; drop_caches only discards clean ones
    DROP_CACHES.write_text("1\n")
    return "page cache: dropped"


def preflight_memory(handler: SystemHandler) -> list[Check]:
    checks = [
        _process_check(spec)
        for spec in handler.processes
        if spec.reclaim_signal or spec.reclaim_command
    ]
    if MemoryGcParams.model_validate(handler.context.params_for("memory_gc")).drop_page_cache:
        ok = os.geteuid() == 0 and os.access(DROP_CACHES, os.W_OK)
        checks.append(
            Check(
                "drop_page_cache",
                ok,
                "root, drop_caches writable" if ok else "needs root",
            )
        )
    if not checks:
        checks.append(Check("reclaim", False, "nothing configured to reclaim"))
    return checks


def _process_check(spec: ProcessSpec) -> Check:
    running = system_procs.find(spec)
    detail = f"pid {', '.join(str(p.pid) for p in running)}" if running else "not running"
    return Check(f"process {spec.name}", bool(running), detail)


# --------------------------------------------------------------------------- file_handle_cleanup


@takes(FileHandleCleanupParams)
def file_handle_cleanup(
    handler: SystemHandler, ctx: StrategyContext, params: FileHandleCleanupParams
) -> StrategyResult:
    deadline = time.monotonic() + min(5.0, ctx.remaining() / 2)
    holders = system_procs.top_fd_holders(params.top, deadline)
    data: dict[str, Any] = {"top_holders": [{"pid": p, "name": n, "fds": c} for p, n, c in holders]}
    notes = []
    if params.raise_soft_limit:
        data["raised"] = raised = [
            _raise_limit(p, params.target_soft_limit, ctx.dry_run)
            for spec in handler.processes
            for p in system_procs.find(spec)
        ]
        notes += [r["note"] for r in raised]
    if params.truncate_deleted:
        truncated = _truncate_deleted(handler, params.truncate_paths, ctx)
        data["truncated"] = truncated
        verb = "would truncate" if ctx.dry_run else "truncated"
        notes.append(f"{verb} {len(truncated)} deleted-but-open files")
    tops = ", ".join(f"{n}[{p}]={c}" for p, n, c in holders)
    return StrategyResult.success(
        trim(f"{'; '.join(notes) or 'no limits changed'}; top holders: {tops}"), **data
    )


def _raise_limit(proc: Any, target_soft_limit: int | None, dry_run: bool) -> dict[str, Any]:
    import psutil

    try:
        soft, hard = proc.rlimit(psutil.RLIMIT_NOFILE)
        target = target_soft_limit or hard
        new = hard if hard != psutil.RLIM_INFINITY and target > hard else target
        if new <= soft:
            return {
                "pid": proc.pid,
                "soft": soft,
                "note": f"pid {proc.pid}: soft limit {soft} already at target",
            }
        if not dry_run:
            proc.rlimit(psutil.RLIMIT_NOFILE, (new, hard))  # prlimit(2) on another process
        verb = "would raise" if dry_run else "raised"
        return {
            "pid": proc.pid,
            "soft": soft,
            "new_soft": new,
            "note": f"pid {proc.pid}: {verb} soft limit {soft} -> {new}",
        }
    except psutil.Error as exc:
        return {
            "pid": proc.pid,
            "note": f"pid {proc.pid}: cannot change limit ({type(exc).__name__})",
        }


def _truncate_deleted(
    handler: SystemHandler, paths: Sequence[str], ctx: StrategyContext
) -> list[dict[str, Any]]:
    """Only files of the configured processes, only under ``truncate_paths``: truncating a
    database's deleted temp file would corrupt it."""
    prefixes = tuple(p.rstrip("/") + "/" for p in paths)
    pids = [p.pid for spec in handler.processes for p in system_procs.find(spec)]
    if not prefixes or not pids:
        return []
    done = []
    deadline = time.monotonic() + ctx.remaining() / 2
    for item in system_procs.deleted_open_files(deadline, pids):
        if not item.path.startswith(prefixes):
            continue
        if not ctx.dry_run:
            try:
                system_procs.truncate_deleted(item)
            except OSError:
                continue
        done.append({"pid": item.pid, "path": item.path, "bytes": item.size})
    return done


def preflight_file_handles(handler: SystemHandler) -> list[Check]:
    checks = [_process_check(spec) for spec in handler.processes]
    can_prlimit = os.geteuid() == 0
    checks.append(
        Check(
            "prlimit",
            can_prlimit,
            "root may raise other processes' limits"
            if can_prlimit
            else "needs root (or CAP_SYS_RESOURCE) for other users' processes",
        )
    )
    checks.append(_proc_check())
    return checks


# --------------------------------------------------------------------------- process_restart


@takes(ProcessRestartParams)
def process_restart(
    handler: SystemHandler, ctx: StrategyContext, params: ProcessRestartParams
) -> StrategyResult:
    targets = [s for s in handler.processes if not (params.only_down and system_procs.find(s))]
    if not targets:
        return StrategyResult.success("every configured process is running; nothing restarted")
    results = [_restart_one(handler, spec, ctx, params.ready_timeout_seconds) for spec in targets]
    data: dict[str, Any] = {"restarted": [dict(r.data) for r in results]}
    detail = "; ".join(r.detail for r in results)
    failed = [r for r in results if not r.ok]
    if failed:
        return StrategyResult.failure(str(failed[0].failure_type), detail, **data)
    return StrategyResult.success(detail, **data)


def _restart_one(
    handler: SystemHandler, spec: ProcessSpec, ctx: StrategyContext, ready_timeout: float
) -> StrategyResult:
    if spec.restart == "service":
        if ctx.service is None:
            return StrategyResult.failure(
                "no_service_control",
                f"{spec.name}: restart: service, but the component has no service block",
            )
        if ctx.dry_run:
            return StrategyResult.success(
                f"{spec.name}: would restart through {ctx.service.method}", name=spec.name
            )
        return ctx.service.restart(ctx.remaining())
    identity = system_procs.load_identity(handler.own_dir, spec)
    if identity is None:
        return StrategyResult.failure(
            "no_recorded_identity",
            f"{spec.name}: never seen running, so its argv, cwd and environment are unknown",
            name=spec.name,
        )
    argv = " ".join(identity["argv"])
    if ctx.dry_run:
        return StrategyResult.success(
            f"{spec.name}: would stop pid {identity['pid']} if still running and respawn {argv}",
            name=spec.name,
        )
    return _respawn(handler, spec, identity, ctx, ready_timeout)


def _respawn(
    handler: SystemHandler,
    spec: ProcessSpec,
    identity: dict[str, Any],
    ctx: StrategyContext,
    ready_timeout: float,
) -> StrategyResult:
    old = system_procs.still_same(identity)
    stopped = (
        system_procs.terminate(old, min(spec.grace_seconds, ctx.remaining() / 2))
        if old
        else "not running"
    )
    private_dir(handler.own_dir, parents=True)
    log = handler.own_dir / f"{spec.name}.log"
    try:
        pid = system_procs.respawn(identity, log, max(1.0, ctx.remaining() / 2))
    except (OSError, ValueError) as exc:
        return StrategyResult.failure("respawn_failed", f"{spec.name}: {exc}", name=spec.name)
    if spec.manage_pidfile and spec.pidfile:
        _write_pidfile(spec.pidfile, pid)
    data = {"name": spec.name, "old_pid": identity["pid"], "new_pid": pid, "old": stopped}
    if _wait_found(spec, ctx, ready_timeout):
        return StrategyResult.success(
            f"{spec.name}: old pid {identity['pid']} {stopped}; respawned as pid {pid}", **data
        )
    return StrategyResult.failure(
        "restart_timeout", f"{spec.name}: respawned pid {pid} but it is not found running", **data
    )


def _write_pidfile(pidfile: str, pid: int) -> None:
    tmp = f"{pidfile}.{os.getpid()}.tmp"
    with open(tmp, "w") as out:
        out.write(f"{pid}\n")
    os.replace(tmp, pidfile)


def _wait_found(spec: ProcessSpec, ctx: StrategyContext, ready_timeout: float) -> bool:
    deadline = time.monotonic() + min(ready_timeout, ctx.remaining())
    while True:
        if system_procs.find(spec):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def preflight_restart(handler: SystemHandler) -> list[Check]:
    checks = []
    for spec in handler.processes:
        if spec.restart == "service":
            checks.append(
                Check(
                    f"process {spec.name}", True, "restarts through the component's service block"
                )
            )
            continue
        known = system_procs.load_identity(handler.own_dir, spec) is not None or bool(
            system_procs.find(spec)
        )
        detail = (
            "argv/cwd/env known (recorded by the probe)"
            if known
            else "never seen running: cannot respawn"
        )
        checks.append(Check(f"process {spec.name}", known, detail))
    if not checks:
        checks.append(Check("processes", True, "no processes configured"))
    return checks
