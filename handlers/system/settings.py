"""The ``system`` kind's settings and strategy params: pydantic models, checked at config
load time (cheap, no I/O). This kind words its problems by type ("wrong type str")."""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainValidator

from recovery_cli.handlers.settings_models import (
    MAX_SECONDS,
    Problem,
    SettingsModel,
    invalid,
    kind_validator,
    number,
    one_of,
    required,
    rule,
)

if TYPE_CHECKING:
    from recovery_cli.handlers.system.cleanup import CleanupRules

TEN_YEARS = 3650 * 86400
MAX_BYTES = 2**63 - 1  # the largest size the kernel reports (off_t)
MAX_PERCENT = 100
MAX_DEPTH = 256
MAX_NOFILE = 2**30  # the kernel's ceiling for RLIMIT_NOFILE (fs.nr_open)
MAX_TOP = 1000
GIB = 1024**3
RESTARTS = ("respawn", "service")
DEFAULT_ROOTS = ("/tmp", "/var/tmp")
SEED_PATTERNS = ("*.tmp", "*.temp", "*.lock", "*.pid", "*~", "*.bak", "*.old", "core.*")


def _type_problem(value: object, types: tuple[type, ...]) -> str | None:
    if isinstance(value, bool) and bool not in types:
        return "must be a number or list, not true/false"
    if not isinstance(value, types):
        return f"wrong type {type(value).__name__}"
    return None


def typed(*types: type) -> BeforeValidator:
    """A value of one of ``types``, in this kind's words. Listed after a rule, it runs first."""

    def check(value: Any) -> Any:
        problem = _type_problem(value, types)
        if problem is not None:
            raise invalid(problem)
        return value

    return BeforeValidator(check)


# Every number is at least 0: a percent at most 100, a wait at most an hour, an age at most
# ten years, a size at most what the kernel reports.
Percent = Annotated[float, number(0, MAX_PERCENT), typed(int, float)]
Bytes = Annotated[int, number(0, MAX_BYTES), typed(int)]
Wait = Annotated[float, number(0, MAX_SECONDS), typed(int, float)]
Age = Annotated[float, number(0, TEN_YEARS), typed(int, float)]
Switch = Annotated[bool, typed(bool)]
Text = Annotated[str, typed(str)]
OptionalText = Annotated[str | None, typed(str)]  # absent: None; null is refused
Texts = Annotated[tuple[Text, ...], typed(list)]


class SystemModel(SettingsModel):
    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.unknown_key = f"unknown key (known: {', '.join(cls.model_fields)})"

    @classmethod
    def wrong_type(cls, value: object) -> str:
        return _type_problem(value, (Mapping,)) or ""


class Disk(SystemModel):
    paths: Texts = ("/",)
    max_used_percent: Percent = 90
    min_free_bytes: Bytes = 0


class Memory(SystemModel):
    min_available_percent: Percent = 10
    min_available_bytes: Bytes = 0


class FileHandles(SystemModel):
    max_used_percent: Percent = 90
    max_process_used_percent: Percent = 90


class DeletedOpenFiles(SystemModel):
    max_bytes: Annotated[int | None, number(0, MAX_BYTES), typed(int)] = None


def _process_name(value: Any) -> str:
    problem = "required" if value is None else _type_problem(value, (str,))
    if problem is not None or not value:
        raise invalid(problem or "required")
    return str(value)


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise invalid(f"bad regex: {exc}") from None
    return value


def _signal_name(value: str) -> str:
    if value not in signal.Signals.__members__:
        raise invalid(f"unknown signal {value!r}")
    return value


class ProcessSpec(SystemModel):
    """One ``settings.processes`` entry."""

    name: Annotated[str, PlainValidator(_process_name)] = required()
    pidfile: OptionalText = None
    process_name: OptionalText = None
    cmdline_pattern: Annotated[str | None, AfterValidator(_regex), typed(str)] = None
    restart: Annotated[str, one_of(RESTARTS, "must be 'respawn' or 'service'"), typed(str)] = (
        "respawn"
    )
    reclaim_signal: Annotated[str | None, AfterValidator(_signal_name), typed(str)] = None
    # an empty list: none
    reclaim_command: Annotated[
        tuple[Text, ...] | None, AfterValidator(lambda v: v or None), typed(list)
    ] = None
    grace_seconds: Wait = 10.0
    manage_pidfile: Switch = False  # write the respawned PID into ``pidfile`` ourselves

    @classmethod
    def wrong_type(cls, value: object) -> str:
        return "each process is a mapping with at least 'name'"

    @classmethod
    def cross_checks(cls, data: Mapping[Any, Any]) -> list[Problem]:
        if data.get("pidfile") or data.get("process_name") or data.get("cmdline_pattern"):
            return []
        return [((), "needs 'pidfile', 'process_name' or 'cmdline_pattern'")]


def _a_list(value: Any) -> Any:
    if not isinstance(value, list):
        raise invalid("must be a list")
    return value


class SystemSettings(SystemModel):
    disk: Disk = Disk()
    memory: Memory = Memory()
    file_handles: FileHandles = FileHandles()
    deleted_open_files: DeletedOpenFiles = DeletedOpenFiles()
    processes: Annotated[tuple[ProcessSpec, ...], BeforeValidator(_a_list)] = ()

    @classmethod
    def cross_checks(cls, data: Mapping[Any, Any]) -> list[Problem]:
        processes = data.get("processes")
        entries = processes if isinstance(processes, list) else []
        names = [
            p["name"] for p in entries if isinstance(p, Mapping) and isinstance(p.get("name"), str)
        ]
        if len(names) == len(set(names)):
            return []
        return [(("processes",), "process names must be unique")]


def _is_root(value: object) -> bool:
    return isinstance(value, str) and value.startswith("/") and value.rstrip("/") != ""


def _not_empty(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        raise invalid("must not be empty")
    return value


Root = Annotated[str, rule(_is_root, "an absolute directory other than /")]


class DiskCleanupParams(SystemModel):
    # none given (or an empty list): the default roots
    roots: Annotated[
        tuple[Root, ...], AfterValidator(lambda v: v or DEFAULT_ROOTS), typed(list)
    ] = DEFAULT_ROOTS
    patterns: Annotated[tuple[Text, ...], AfterValidator(_not_empty), typed(list)] = SEED_PATTERNS
    min_age_seconds: Age = 3600
    lock_min_age_seconds: Age = 3600
    max_bytes: Bytes = GIB
    max_depth: Annotated[int, number(0, MAX_DEPTH), typed(int)] = 32
    quarantine_dir: Annotated[
        str | None, rule(lambda v: v.startswith("/"), "must be an absolute path"), typed(str)
    ] = None

    def rules(self) -> CleanupRules:
        from recovery_cli.handlers.system.cleanup import CleanupRules

        return CleanupRules(
            patterns=self.patterns,
            min_age_seconds=self.min_age_seconds,
            max_bytes=self.max_bytes,
            lock_min_age_seconds=self.lock_min_age_seconds,
            max_depth=self.max_depth,
            quarantine_dir=self.quarantine_dir,
        )


class MemoryGcParams(SystemModel):
    drop_page_cache: Switch = False
    settle_seconds: Wait = 1.0


class FileHandleCleanupParams(SystemModel):
    raise_soft_limit: Switch = True
    target_soft_limit: Annotated[int | None, number(0, MAX_NOFILE), typed(int)] = None
    top: Annotated[int, number(0, MAX_TOP), typed(int)] = 5
    truncate_deleted: Switch = False
    truncate_paths: Texts = ()


class ProcessRestartParams(SystemModel):
    only_down: Switch = True
    ready_timeout_seconds: Wait = 10


PARAMS: dict[str, type[SettingsModel]] = {
    "disk_cleanup": DiskCleanupParams,
    "memory_gc": MemoryGcParams,
    "file_handle_cleanup": FileHandleCleanupParams,
    "process_restart": ProcessRestartParams,
}


# every problem with a component's settings and its strategies' params
validate = kind_validator(SystemSettings, PARAMS)
