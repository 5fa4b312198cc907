"""The host itself (``kind: system``): disk, memory, file handles and watched processes.

Every strategy is honest about what a separate, short-lived CLI process can do: it can
delete stale files, signal processes, raise their descriptor limits and restart them;
it cannot make a process release memory or descriptors it still uses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from recovery_cli.handlers.base import (
    BaseHandler,
    Check,
    ComponentContext,
    Health,
    ProbeResult,
)
from recovery_cli.handlers.system import procs as system_procs
from recovery_cli.handlers.system.kind import KIND
from recovery_cli.handlers.system.settings import ProcessSpec, SystemSettings
from recovery_cli.handlers.util import trim

# When several problems show at once, the failure type is the first of these found.
FAILURE_ORDER = (
    "process_down",
    "disk_pressure",
    "fd_exhaustion",
    "memory_pressure",
    "deleted_open_files",
)
GIB = 1024**3


@dataclass(frozen=True)
class Finding:
    failure_type: str
    health: Health
    detail: str


class SystemHandler(BaseHandler):
    kind = "system"
    spec = KIND

    def __init__(self, context: ComponentContext) -> None:
        super().__init__(context)
        self.settings = SystemSettings.model_validate(context.settings)

    # ------------------------------------------------------------------ settings

    @property
    def processes(self) -> list[ProcessSpec]:
        return list(self.settings.processes)

    @property
    def own_dir(self) -> Path:
        return self.context.state_dir / self.context.name

    # ------------------------------------------------------------------ probe

    def probe(self) -> ProbeResult:
        deadline = time.monotonic() + self.context.probe_timeout * 0.8
        metrics: dict[str, float] = {}
        findings = [
            *self._disk(metrics),
            *self._memory(metrics),
            *self._file_handles(metrics),
            *self._processes(metrics),
            *self._deleted_open(metrics, deadline),
        ]
        if not findings:
            return ProbeResult.ok("disk, memory, file handles and processes within limits", metrics)
        findings.sort(key=lambda f: FAILURE_ORDER.index(f.failure_type))
        worst = Health.DOWN if any(f.health is Health.DOWN for f in findings) else Health.DEGRADED
        detail = "; ".join(f"{f.failure_type}: {f.detail}" for f in findings)
        return ProbeResult(worst, findings[0].failure_type, trim(detail), metrics)

    def _disk(self, metrics: dict[str, float]) -> list[Finding]:
        import psutil

        disk = self.settings.disk
        findings = []
        for path in disk.paths:
            try:
                usage = psutil.disk_usage(path)
            except OSError as exc:
                findings.append(
                    Finding(
                        "disk_pressure", Health.DEGRADED, f"{path}: cannot stat: {exc.strerror}"
                    )
                )
                continue
            metrics[f"disk_used_percent:{path}"] = usage.percent
            metrics[f"disk_free_bytes:{path}"] = float(usage.free)
            limit, floor = disk.max_used_percent, disk.min_free_bytes
            if usage.percent > limit or usage.free < floor:
                text = (
                    f"{path} {usage.percent:.1f}% used, {usage.free / GIB:.2f} GiB free "
                    f"(limits {limit}%, {floor} B)"
                )
                findings.append(Finding("disk_pressure", Health.DEGRADED, text))
        return findings

    def _memory(self, metrics: dict[str, float]) -> list[Finding]:
        import psutil

        memory = self.settings.memory
        vm = psutil.virtual_memory()
        available_percent = 100.0 * vm.available / vm.total
        metrics["memory_available_bytes"] = float(vm.available)
        metrics["memory_available_percent"] = round(available_percent, 2)
        limit, floor = memory.min_available_percent, memory.min_available_bytes
        if available_percent < limit or vm.available < floor:
            text = (
                f"{available_percent:.1f}% ({vm.available / GIB:.2f} GiB) available "
                f"(limits {limit}%, {floor} B)"
            )
            return [Finding("memory_pressure", Health.DEGRADED, text)]
        return []

    def _file_handles(self, metrics: dict[str, float]) -> list[Finding]:
        section = self.settings.file_handles
        findings = []
        system = system_procs.system_file_handles()
        if system is not None:
            allocated, maximum = system
            percent = 100.0 * allocated / maximum if maximum else 0.0
            metrics["file_handles_allocated"] = float(allocated)
            metrics["file_handles_used_percent"] = round(percent, 3)
            if percent > section.max_used_percent:
                findings.append(
                    Finding(
                        "fd_exhaustion",
                        Health.DEGRADED,
                        f"system-wide {allocated}/{maximum} handles",
                    )
                )
        findings += self._process_fds(metrics, section.max_process_used_percent)
        return findings

    def _process_fds(self, metrics: dict[str, float], limit: float) -> list[Finding]:
        import psutil

        findings = []
        for spec in self.processes:
            for proc in system_procs.find(spec):
                try:
                    soft, _ = proc.rlimit(psutil.RLIMIT_NOFILE)
                    used = proc.num_fds()
                except psutil.Error:
                    continue
                percent = 100.0 * used / soft if soft > 0 else 0.0
                metrics[f"process_fd_used_percent:{spec.name}"] = round(percent, 2)
                if percent > limit:
                    text = f"{spec.name} (pid {proc.pid}) holds {used} of its {soft} descriptors"
                    findings.append(Finding("fd_exhaustion", Health.DEGRADED, text))
        return findings

    def _processes(self, metrics: dict[str, float]) -> list[Finding]:
        findings = []
        for spec in self.processes:
            running = system_procs.find(spec)
            metrics[f"process_count:{spec.name}"] = float(len(running))
            if not running:
                findings.append(Finding("process_down", Health.DOWN, f"{spec.name} is not running"))
            elif spec.restart == "respawn" and not self.context.read_only:
                system_procs.record_identity(self.own_dir, spec, running[0])
        return findings

    def _deleted_open(self, metrics: dict[str, float], deadline: float) -> list[Finding]:
        held = system_procs.deleted_open_files(deadline)
        total = sum(item.size for item in held)
        metrics["deleted_open_bytes"] = float(total)
        limit = self.settings.deleted_open_files.max_bytes
        if limit is not None and total > limit:
            biggest = max(held, key=lambda item: item.size)
            text = (
                f"{total} B held by {len(held)} deleted-but-open files (cleanup cannot free them); "
                f"largest {biggest.path} in pid {biggest.pid}"
            )
            return [Finding("deleted_open_files", Health.DEGRADED, text)]
        return []

    # ------------------------------------------------------------------ strategies

    def preflight(self, strategy: str) -> list[Check]:
        from recovery_cli.handlers.system import strategies as s

        checks = {
            "disk_cleanup": s.preflight_cleanup,
            "memory_gc": s.preflight_memory,
            "file_handle_cleanup": s.preflight_file_handles,
            "process_restart": s.preflight_restart,
        }
        if strategy not in checks:
            return [Check(strategy, False, f"unknown strategy for kind system: {strategy}")]
        return checks[strategy](self)
