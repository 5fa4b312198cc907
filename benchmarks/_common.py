"""Shared helpers for the benchmark scripts (not part of the package)."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recovery_cli.handlers.util import format_ts

COMPONENTS = ("redis", "chromadb", "openwebui", "system", "app")
STRATEGIES = ("reconnect", "flush_corrupted", "restart_container", "disk_cleanup", "restart_app")


def installed_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of an installed tool: byte code cached, as pip leaves it (with
    PYTHONDONTWRITEBYTECODE set, every run would compile every module it imports)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra or {})
    return env


def median_seconds(argv: Sequence[str], runs: int, env: dict[str, str] | None = None) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            env=installed_env(env),
        )
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def wall_and_cpu(argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """One run of ``argv``: wall seconds, and CPU seconds (user + system) of the process and
    its children. The CPU figure moves less when other work shares the machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        check=False,
        env=installed_env(env),
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def timed(fn: Callable[[], object], runs: int) -> float:
    """The median seconds of ``runs`` calls of ``fn`` in this process."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def write_config(path: Path) -> Path:
    path.write_text(
        "version: 1\ncomponents:\n"
        + "".join(
            f'  {name}:\n    kind: command\n    settings: {{probe: ["true"]}}\n    chain: [restart_app]\n'
            f'    strategies: {{restart_app: {{params: {{command: ["true"]}}}}}}\n'
            for name in COMPONENTS
        )
    )
    return path


def generate_audit(audit_dir: Path, records: int, days: int, end: float) -> None:
    """``records`` audit records spread evenly over ``days`` days ending at ``end``,
    hash-chained like real ones."""
    audit_dir.mkdir(parents=True, exist_ok=True)
    step = days * 86400 / records
    start = end - days * 86400
    previous = "0" * 64
    handles: dict[str, object] = {}
    current_day, handle = "", None
    for index in range(records):
        ts = format_ts(start + index * step)
        if ts[:10] != current_day:
            if handle is not None:
                handle.close()  # type: ignore[attr-defined]
            current_day = ts[:10]
            handle = (audit_dir / f"{current_day}.jsonl").open("w")
        component = COMPONENTS[index % len(COMPONENTS)]
        record = {
            "ts": ts,
            "id": f"{index:012x}",
            "event": ("attempt", "step", "blocked")[index % 3],
            "component": component,
            "host": "bench",
            "pid": 1,
            "strategy": STRATEGIES[index % len(STRATEGIES)],
            "outcome": ("started", "success", "failed", "blocked")[index % 4],
            "trigger": "cron",
            "detail": "synthetic record for the history benchmark",
            "prev_hash": previous,
        }
        line = json.dumps(record, separators=(",", ":"))
        previous = hashlib.sha256(line.encode()).hexdigest()
        handle.write(line + "\n")  # type: ignore[union-attr]
    if handle is not None:
        handle.close()
    del handles
