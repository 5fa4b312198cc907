"""Small mutable policy state (approvals, disables, degraded modes), replaced atomically.

Written as temp file -> fsync -> ``os.replace`` -> fsync of the directory, always under the
state lock, so a reader sees the old file or the new one and never half of either."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recovery_cli.errors import StateError
from recovery_cli.handlers.base import fsync_directory

STATE_VERSION = 1
TEMP_PREFIX = ".state.json.tmp."


@dataclass
class State:
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    disabled: dict[str, dict[str, Any]] = field(default_factory=dict)
    degraded: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_run: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "approvals": self.approvals,
            "disabled": self.disabled,
            "degraded": self.degraded,
            "last_run": self.last_run,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        return cls(
            approvals=dict(data.get("approvals") or {}),
            disabled=dict(data.get("disabled") or {}),
            degraded=dict(data.get("degraded") or {}),
            last_run=data.get("last_run"),
        )


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> State:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return State()
        except OSError as exc:
            raise StateError(f"cannot read state file {self.path}: {exc.strerror}") from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StateError(
                f"state file {self.path} is not valid JSON ({exc}); move it aside to start afresh"
            ) from exc
        if not isinstance(data, dict):
            raise StateError(f"state file {self.path} does not hold a JSON object")
        return State.from_json(data)

    def save(self, state: State) -> None:
        directory = self.path.parent
        temp = directory / f"{TEMP_PREFIX}{os.getpid()}"
        payload = json.dumps(state.to_json(), indent=1, sort_keys=True).encode()
        try:
            fd = os.open(
                temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
            )
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
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        if written == 0:
            raise OSError(28, "No space left on device")
        view = view[written:]
