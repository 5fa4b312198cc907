"""Small mutable policy state (approvals, disables, degraded modes), replaced atomically.

Written as temp file -> fsync -> ``os.replace`` -> fsync of the directory, always under the
state lock, so a reader sees the old file or the new one and never half of either."""

from __future__ import annotations

import enum
import json
import os
import stat
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recovery_cli.approvals import Approval, ApprovalStatus
from recovery_cli.audit import ChainHead, is_timestamp, map_strings, parse_ts_or
from recovery_cli.errors import StateError
from recovery_cli.handlers.util import fsync_directory
from recovery_cli.statedir import open_private

STATE_VERSION = 1
TEMP_PREFIX = ".state.json.tmp."
MAX_STATE_BYTES = 16 << 20
MAPPINGS = ("approvals", "disabled", "degraded", "components")
# the fields each entry must have, and their types: anything else is a damaged state file
TIMESTAMP = "timestamp"
REQUIRED_FIELDS: dict[str, dict[str, str | type]] = {
    "approvals": {
        "id": str,
        "component": str,
        "strategy": str,
        "status": ApprovalStatus,
        "plan_hash": str,
        "created": TIMESTAMP,
        "expires": TIMESTAMP,
    },
    "disabled": {"until": TIMESTAMP, "since": TIMESTAMP},
    "degraded": {"component": str, "since": TIMESTAMP},
}
# the fields an entry may lack or hold as null, and their types when it has them
OPTIONAL_FIELDS: dict[str, dict[str, str | type]] = {
    "approvals": {
        "params": dict,
        "failure_type": str,
        "requested_by": str,
        "attempt_id": str,
        "notified": TIMESTAMP,
        "approved_by": str,
        "approved_at": TIMESTAMP,
        "closed_by": str,
        "closed_at": TIMESTAMP,
        "plan": dict,
    },
    "disabled": {"reason": str, "by": str},
    "degraded": {"why": str},
}


@dataclass(frozen=True)
class DisabledEntry:
    """Automatic recovery of a component suspended until ``until`` (``recovery disable``)."""

    until: float
    since: float
    reason: str = ""
    by: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"until": self.until, "reason": self.reason, "by": self.by, "since": self.since}

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> DisabledEntry:
        return cls(entry["until"], entry["since"], entry.get("reason") or "", entry.get("by") or "")


@dataclass(frozen=True)
class DegradedEntry:
    """A degraded mode in force: entered when its component's chain was exhausted."""

    component: str
    since: float
    why: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"component": self.component, "since": self.since, "why": self.why}

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> DegradedEntry:
        return cls(entry["component"], entry["since"], entry.get("why") or "")


@dataclass
class State:
    approvals: dict[str, Approval] = field(default_factory=dict)
    disabled: dict[str, DisabledEntry] = field(default_factory=dict)
    degraded: dict[str, DegradedEntry] = field(default_factory=dict)  # by mode name
    last_run: float | None = None
    chain_head: ChainHead | None = None  # where the audit trail ended after the last write
    components: dict[str, dict[str, Any]] = field(default_factory=dict)  # lifecycle.Life
    global_alert: dict[str, Any] | None = None  # the blast-radius alert, while it holds
    counters: dict[str, Any] = field(default_factory=dict)  # totals of pruned day files
    unsent_alerts: list[dict[str, Any]] = field(default_factory=list)  # resolutions to retry
    # the first record written here while the state database was away (copied there later)
    unsynced_since: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "approvals": {k: v.to_json() for k, v in self.approvals.items()},
            "disabled": {k: v.to_json() for k, v in self.disabled.items()},
            "degraded": {k: v.to_json() for k, v in self.degraded.items()},
            "last_run": self.last_run,
            "chain_head": self.chain_head.to_json() if self.chain_head else None,
            "components": self.components,
            "global_alert": self.global_alert,
            "counters": self.counters,
            "unsent_alerts": self.unsent_alerts,
            "unsynced_since": self.unsynced_since,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        """Raises ``ValueError`` naming the first field of the wrong shape."""
        for key in MAPPINGS:
            value = data.get(key) or {}
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                raise ValueError(f"{key!r} must map names to objects")
            for name, entry in value.items():
                _check_fields(key, str(name), entry)
        last_run = data.get("last_run")
        if last_run is not None and (
            isinstance(last_run, bool) or not isinstance(last_run, int | float)
        ):
            raise ValueError("'last_run' must be a number")
        alert, counters = data.get("global_alert"), data.get("counters")
        return cls(
            approvals={k: Approval.from_json(v) for k, v in (data.get("approvals") or {}).items()},
            disabled={
                k: DisabledEntry.from_json(v) for k, v in (data.get("disabled") or {}).items()
            },
            degraded={
                k: DegradedEntry.from_json(v) for k, v in (data.get("degraded") or {}).items()
            },
            last_run=last_run,
            chain_head=ChainHead.from_json(data.get("chain_head")),
            components=dict(data.get("components") or {}),
            global_alert=alert if isinstance(alert, dict) else None,
            counters=counters if isinstance(counters, dict) else {},
            unsent_alerts=[a for a in data.get("unsent_alerts") or [] if isinstance(a, dict)]
            if isinstance(data.get("unsent_alerts"), list)
            else [],
            unsynced_since=_timestamp_or_none(data.get("unsynced_since")),
        )


class StateFile:
    def __init__(self, path: Path, redact: Callable[[str], str] = lambda s: s) -> None:
        self.path = path
        self.redact = redact  # a reason or a name someone typed may hold a secret

    def load(self) -> State:
        try:
            raw = self._read()
        except FileNotFoundError:
            return State()
        except OSError as exc:
            raise StateError(f"cannot read state file {self.path}: {exc.strerror}") from exc
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("it does not hold a JSON object")
            return State.from_json(data)
        except RecursionError:
            raise StateError(
                f"state file {self.path} is not valid (nested too deeply); move it aside"
            ) from None
        except ValueError as exc:
            raise StateError(
                f"state file {self.path} is not valid ({exc}); move it aside to start afresh"
            ) from None

    def _read(self) -> bytes:
        fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StateError(f"state file {self.path} is not a regular file")
            raw = os.read(fd, MAX_STATE_BYTES + 1)
        finally:
            os.close(fd)
        if len(raw) > MAX_STATE_BYTES:
            raise StateError(f"state file {self.path} is larger than {MAX_STATE_BYTES} bytes")
        return raw

    def save(self, state: State) -> None:
        directory = self.path.parent
        temp = directory / f"{TEMP_PREFIX}{os.getpid()}.{uuid.uuid4().hex[:8]}"
        clean = map_strings(state.to_json(), self.redact)
        payload = self.redact(json.dumps(clean, indent=1, sort_keys=True)).encode()
        try:
            fd = open_private(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            try:
                _write_all(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.path)
            fsync_directory(directory)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise StateError(f"cannot write state file {self.path}: {exc.strerror}") from exc

    def sweep_temp_files(self) -> int:
        """Remove temp files left by a process killed mid-write (caller holds the lock)."""
        removed = 0
        for leftover in self.path.parent.glob(f"{TEMP_PREFIX}*"):
            leftover.unlink(missing_ok=True)  # unlink never follows a symlink
            removed += 1
        return removed


def _timestamp_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and parse_ts_or(value, -1.0) >= 0 else None


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        if written == 0:
            raise OSError(28, "No space left on device")
        view = view[written:]


def _check_fields(table: str, name: str, entry: dict[str, Any]) -> None:
    for field_name, kind in REQUIRED_FIELDS.get(table, {}).items():
        _check_field(f"{table}.{name}.{field_name}", entry.get(field_name), kind)
    for field_name, kind in OPTIONAL_FIELDS.get(table, {}).items():
        if entry.get(field_name) is not None:
            _check_field(f"{table}.{name}.{field_name}", entry[field_name], kind)


def _check_field(where: str, value: object, kind: str | type) -> None:
    if kind == TIMESTAMP:
        if not is_timestamp(value):
            raise ValueError(f"{where} is not a time")
    elif isinstance(kind, type) and issubclass(kind, enum.Enum):  # one of the enum's values
        known = [str(member.value) for member in kind]
        if not isinstance(value, str):
            raise ValueError(f"{where} is missing or of the wrong type")
        if value not in known:
            raise ValueError(f"{where} is not one of {', '.join(known)}")
    elif not isinstance(value, kind):  # type: ignore[arg-type]
        raise ValueError(f"{where} is missing or of the wrong type")
