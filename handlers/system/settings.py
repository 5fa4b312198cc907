"""Validation of the ``system`` kind's settings and strategy params (cheap, no I/O)."""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping
from typing import Any

from recovery_cli.handlers.base import SettingsError, number_errors

SECTION_KEYS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "disk": {"paths": list, "max_used_percent": (int, float), "min_free_bytes": int},
    "memory": {"min_available_percent": (int, float), "min_available_bytes": int},
    "file_handles": {"max_used_percent": (int, float), "max_process_used_percent": (int, float)},
    "deleted_open_files": {"max_bytes": int},
}
PROCESS_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "pidfile": str,
    "process_name": str,
    "cmdline_pattern": str,
    "restart": str,
    "reclaim_signal": str,
    "reclaim_command": list,
    "grace_seconds": (int, float),
    "manage_pidfile": bool,
}
PARAM_KEYS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "disk_cleanup": {
        "roots": list,
        "patterns": list,
        "min_age_seconds": (int, float),
        "lock_min_age_seconds": (int, float),
        "max_bytes": int,
        "max_depth": int,
        "quarantine_dir": str,
    },
    "memory_gc": {"drop_page_cache": bool, "settle_seconds": (int, float)},
    "file_handle_cleanup": {
        "raise_soft_limit": bool,
        "target_soft_limit": int,
        "top": int,
        "truncate_deleted": bool,
        "truncate_paths": list,
    },
    "process_restart": {"only_down": bool, "ready_timeout_seconds": (int, float)},
}

HOUR, TEN_YEARS = 3600, 3650 * 86400
MAX_BYTES = 2**63 - 1  # the largest size the kernel reports (off_t)
# the upper bound of every number above (each is at least 0): a percent is at most 100, a
# wait at most an hour, an age at most ten years
NUMBER_LIMITS: dict[str, float] = {
    "max_used_percent": 100,
    "max_process_used_percent": 100,
    "min_available_percent": 100,
    "min_free_bytes": MAX_BYTES,
    "min_available_bytes": MAX_BYTES,
    "max_bytes": MAX_BYTES,
    "grace_seconds": HOUR,
    "settle_seconds": HOUR,
    "ready_timeout_seconds": HOUR,
    "min_age_seconds": TEN_YEARS,
    "lock_min_age_seconds": TEN_YEARS,
    "max_depth": 256,
    "target_soft_limit": 2**30,  # the kernel's ceiling for RLIMIT_NOFILE (fs.nr_open)
    "top": 1000,
}


def _typed(
    values: Mapping[str, Any], schema: Mapping[str, Any], prefix: str
) -> list[SettingsError]:
    errors = []
    for key, value in values.items():
        if key not in schema:
            errors.append(
                SettingsError(f"{prefix}.{key}", f"unknown key (known: {', '.join(schema)})")
            )
        elif isinstance(value, bool) and schema[key] is not bool:
            errors.append(
                SettingsError(f"{prefix}.{key}", "must be a number or list, not true/false")
            )
        elif not isinstance(value, schema[key]):
            errors.append(SettingsError(f"{prefix}.{key}", f"wrong type {type(value).__name__}"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            errors += number_errors(f"{prefix}.{key}", value, 0, NUMBER_LIMITS[key])
    return errors


def _process_errors(index: int, raw: Any) -> list[SettingsError]:
    key = f"settings.processes.{index}"
    if not isinstance(raw, Mapping):
        return [SettingsError(key, "each process is a mapping with at least 'name'")]
    errors = _typed(raw, PROCESS_KEYS, key)
    if not raw.get("name"):
        errors.append(SettingsError(f"{key}.name", "required"))
    if not (raw.get("pidfile") or raw.get("process_name") or raw.get("cmdline_pattern")):
        errors.append(SettingsError(key, "needs 'pidfile', 'process_name' or 'cmdline_pattern'"))
    if raw.get("restart", "respawn") not in ("respawn", "service"):
        errors.append(SettingsError(f"{key}.restart", "must be 'respawn' or 'service'"))
    signal_name = raw.get("reclaim_signal")
    if isinstance(signal_name, str) and signal_name not in signal.Signals.__members__:
        errors.append(SettingsError(f"{key}.reclaim_signal", f"unknown signal {signal_name!r}"))
    if isinstance(raw.get("cmdline_pattern"), str):
        try:
            re.compile(raw["cmdline_pattern"])
        except re.error as exc:
            errors.append(SettingsError(f"{key}.cmdline_pattern", f"bad regex: {exc}"))
    return errors


def _cleanup_errors(params: Mapping[str, Any]) -> list[SettingsError]:
    key = "strategies.disk_cleanup.params"
    errors = []
    roots = params.get("roots")
    for index, root in enumerate(roots if isinstance(roots, list) else []):
        if not isinstance(root, str) or not root.startswith("/") or root.rstrip("/") == "":
            errors.append(
                SettingsError(f"{key}.roots.{index}", "an absolute directory other than /")
            )
    quarantine = params.get("quarantine_dir")
    if isinstance(quarantine, str) and not quarantine.startswith("/"):
        errors.append(SettingsError(f"{key}.quarantine_dir", "must be an absolute path"))
    if "patterns" in params and not params["patterns"]:
        errors.append(SettingsError(f"{key}.patterns", "must not be empty"))
    return errors


def validate(
    settings: Mapping[str, Any], strategy_params: Mapping[str, Mapping[str, Any]]
) -> list[SettingsError]:
    errors = _typed(
        {k: v for k, v in settings.items() if k != "processes"},
        dict.fromkeys(SECTION_KEYS, Mapping),
        "settings",
    )
    for section, schema in SECTION_KEYS.items():
        if isinstance(settings.get(section), Mapping):
            errors += _typed(settings[section], schema, f"settings.{section}")
    processes = settings.get("processes", [])
    if not isinstance(processes, list):
        errors.append(SettingsError("settings.processes", "must be a list"))
        processes = []
    for index, raw in enumerate(processes):
        errors += _process_errors(index, raw)
    names = [
        p["name"] for p in processes if isinstance(p, Mapping) and isinstance(p.get("name"), str)
    ]
    if len(names) != len(set(names)):
        errors.append(SettingsError("settings.processes", "process names must be unique"))
    for strategy, params in strategy_params.items():
        if strategy in PARAM_KEYS:
            errors += _typed(params, PARAM_KEYS[strategy], f"strategies.{strategy}.params")
    errors += _cleanup_errors(strategy_params.get("disk_cleanup", {}))
    return errors
