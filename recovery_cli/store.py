"""The state directory: one lock, the audit trail, the state file, per-component locks.

Every read-decide-write of policy state happens inside ``Store.transaction()``, which holds
the directory's one flock for a bounded wait. ``read_only`` stores (``--dry-run``, ``status``)
never create or change anything on disk."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recovery_cli.audit import AuditLog, Record, format_ts, new_id
from recovery_cli.context import Environment
from recovery_cli.errors import LockTimeout, StateError
from recovery_cli.locking import FileLock
from recovery_cli.policy import Outcome, Window, build_window, lookback_since
from recovery_cli.state import State, StateFile


@dataclass
class Transaction:
    store: Store
    state: State
    dirty: bool = False

    def record(self, event: str, component: str | None, **fields: Any) -> Record:
        return self.store.append(event, component, **fields)

    def changed(self) -> None:
        self.dirty = True

    def start_attempt(self, component: str, **fields: Any) -> str:
        """The intent record, written and fsynced before the first action: it counts against
        the hourly cap from this moment, even if the process dies mid-recovery."""
        attempt_id = new_id()
        self.record("attempt", component, outcome=Outcome.STARTED, attempt_id=attempt_id, **fields)
        return attempt_id


class Store:
    def __init__(
        self,
        root: Path,
        env: Environment,
        redact: Callable[[str], str] = lambda s: s,
        read_only: bool = False,
    ) -> None:
        self.root = root
        self.env = env
        self.read_only = read_only
        self.audit = AuditLog(root / "audit", redact)
        self.state_file = StateFile(root / "state.json")
        if not read_only:
            self._ensure_layout()

    def _ensure_layout(self) -> None:
        try:
            for directory in (self.root, self.root / "audit", self.root / "locks"):
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                _check_private(directory)
        except OSError as exc:
            raise StateError(f"cannot use state directory {self.root}: {exc.strerror}") from exc

    def now(self) -> float:
        return self.env.clock.now()

    @contextmanager
    def transaction(self, wait: float) -> Iterator[Transaction]:
        if self.read_only:
            yield Transaction(self, self.load_state())
            return
        with FileLock(self.root / "lock") as lock:
            if not lock.acquire(wait):
                raise LockTimeout(
                    f"another recovery run holds {self.root / 'lock'} (waited {wait:g}s)"
                )
            self.state_file.sweep_temp_files()
            tx = Transaction(self, self.state_file.load())
            yield tx
            if tx.dirty:
                self.state_file.save(tx.state)

    def load_state(self) -> State:
        return self.state_file.load()

    def append(self, event: str, component: str | None, **fields: Any) -> Record:
        """Append one audit record (caller holds the transaction). A read-only store only
        builds the record, so dry runs can show what they would have written."""
        record: Record = {
            "ts": format_ts(self.now()),
            "id": new_id(),
            "event": event,
            "component": component,
            "host": self.env.host,
            "pid": self.env.pid,
        }
        record.update({k: v for k, v in fields.items() if v is not None})
        if self.read_only:
            return record
        return self.audit.append(record)

    def window(self, component: str, cap: int, cooldown: int) -> Window:
        """The component's attempt window and cooldown, read from the end of the audit trail
        (only the last hour, or the cooldown if longer; other components' lines unparsed)."""
        now = self.now()
        records = self.audit.read_back(
            since=lookback_since(now, cooldown), contains=f'"component":"{component}"'.encode()
        )
        return build_window(records, component, cap, cooldown, now)

    def component_lock(self, component: str) -> FileLock:
        return FileLock(self.root / "locks" / f"{component}.lock")

    def component_dir(self, component: str) -> Path:
        return self.root / component


def _check_private(directory: Path) -> None:
    info = directory.lstat()
    if stat.S_ISLNK(info.st_mode):
        raise StateError(f"state directory {directory} is a symlink; refusing to use it")
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(directory, 0o700)
