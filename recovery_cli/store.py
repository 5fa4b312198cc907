"""The state directory: one lock, the audit trail, the state file, per-component locks.

Every read-decide-write of policy state happens inside ``Store.transaction()``, which holds
the directory's one flock for a bounded wait. ``read_only`` stores (``--dry-run``, ``status``)
never create or change anything on disk. The directory is used only when it can be trusted
(see ``statedir``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from recovery_cli import statedir
from recovery_cli.audit import AuditLog, ChainHead, Event, Record, new_id, parse_ts_or
from recovery_cli.environment import Environment
from recovery_cli.errors import LockTimeout
from recovery_cli.handlers.util import format_ts
from recovery_cli.limits import bounded
from recovery_cli.locking import FileLock
from recovery_cli.policy import Outcome, Window, build_window, lookback_since
from recovery_cli.state_file import State, StateFile

if TYPE_CHECKING:
    from recovery_cli.counters import Tally
    from recovery_cli.history import HistoryQuery, StatsRow
    from recovery_cli.outcomes import Change


class Aggregates(Protocol):
    """What ``history --stats`` and ``metrics`` count, computed where the records are."""

    def step_stats(self, query: HistoryQuery) -> list[StatsRow]: ...

    def changes(self, since: str | None) -> list[Change]: ...

    def first_ts(self) -> str | None: ...

    def tally(self) -> Tally: ...


@dataclass
class Transaction:
    store: Store
    state: State
    dirty: bool = False
    head_checked: bool = False
    written: list[Record] = field(default_factory=list)  # told to ``on_record`` at the end

    def record(self, event: Event, component: str | None, **fields: Any) -> Record:
        if self.store.read_only:
            return self.store.build_record(event, component, fields)
        if not self.head_checked:
            self.head_checked = True
            self._record_damage()
        record, head = self.store.audit.append(self.store.build_record(event, component, fields))
        self.state.chain_head = head
        self.dirty = True
        self.written.append(record)
        return record

    def _record_damage(self) -> None:
        """A trail cut, edited or deleted since the last write is recorded in the trail
        itself before anything else, so the evidence outlives the next run."""
        damage = self.store.audit.head_damage(self.state.chain_head)
        if damage is not None:
            _, head = self.store.audit.append(
                self.store.build_record(Event.AUDIT_DAMAGED, None, {"detail": damage})
            )
            self.state.chain_head = head
            self.dirty = True

    def changed(self) -> None:
        self.dirty = True

    def start_attempt(self, component: str, **fields: Any) -> str:
        """The intent record, written and fsynced before the first action: it counts against
        the hourly cap from this moment, even if the process dies mid-recovery."""
        attempt_id = new_id()
        self.record(
            Event.ATTEMPT, component, outcome=Outcome.STARTED, attempt_id=attempt_id, **fields
        )
        return attempt_id


class Store:
    def __init__(
        self,
        root: Path,
        env: Environment,
        redact: Callable[[str], str] = lambda s: s,
        read_only: bool = False,
        audit_key: bytes | None = None,
    ) -> None:
        self.root = root
        self.env = env
        self.read_only = read_only
        # told every record once its transaction is saved (``watch`` logs them as they come)
        self.on_record: Callable[[Record], None] | None = None
        # fields every record of this store carries (the API's client address)
        self.stamp: dict[str, Any] = {}
        self.audit = AuditLog(root / "audit", redact, audit_key)
        self.state_file = StateFile(root / "state.json", redact)
        exists = statedir.check_trusted(root)
        if not read_only:
            self._ensure_layout(exists)
        elif exists:
            self._check_layout()

    def _ensure_layout(self, exists: bool) -> None:
        if not exists:
            statedir.create_state_dir(self.root)
        for directory in (self.root / "audit", self.root / "locks"):
            statedir.private_subdir(directory)

    def _check_layout(self) -> None:
        """Read-only runs create nothing, but still refuse a symlinked audit dir."""
        for directory in (self.root / "audit", self.root / "locks"):
            if directory.is_symlink():
                statedir.private_subdir(directory)  # raises: a symlink

    def now(self) -> float:
        return self.env.clock.now()

    @contextmanager
    def transaction(self, wait: float) -> Iterator[Transaction]:
        if self.read_only:
            yield Transaction(self, self.load_state())
            return
        with FileLock(self.root, directory=True) as lock:
            if not lock.acquire(wait):
                raise LockTimeout(
                    f"another recovery run holds the lock on {self.root} (waited {wait:g}s)"
                )
            self.state_file.sweep_temp_files()
            tx = Transaction(self, self.state_file.load())
            yield tx
            if tx.dirty:
                self.state_file.save(tx.state)
        if self.on_record is not None:  # with the lock released: a slow reader holds nobody
            for record in tx.written:
                self.on_record(record)

    def load_state(self) -> State:
        return self.state_file.load()

    def build_record(self, event: Event, component: str | None, fields: dict[str, Any]) -> Record:
        """One audit record, every text in it bounded (``limits.bounded``). The first four
        fields always come in this order: the window's search relies on it."""
        record: Record = {
            "ts": format_ts(self.now()),
            "id": new_id(),
            "event": event,
            "component": component,
            "host": self.env.host,
            "pid": self.env.pid,
        }
        stamped = {**self.stamp, **fields}
        record.update({k: bounded(v) for k, v in stamped.items() if v is not None})
        return record

    def chain_head(self) -> ChainHead | None:
        return self.load_state().chain_head

    def window(self, component: str, cap: int, cooldown: int, day_cap: int | None = None) -> Window:
        """The component's attempt window and cooldown, from every attempt record of the
        day files that can hold the last hour (or the cooldown, if longer), future-dated
        files included; other records are never parsed."""
        now = self.now()
        needle = f'"event":"{Event.ATTEMPT}","component":"{component}"'.encode()
        records = self.audit.matching(lookback_since(now, cooldown, day_cap), needle)
        return build_window(records, component, cap, cooldown, now, day_cap)

    def attempts_since(self, component: str, since: float) -> list[Record]:
        """The component's attempt records from ``since`` on, oldest first."""
        needle = f'"event":"{Event.ATTEMPT}","component":"{component}"'.encode()
        now = self.now()
        records = self.audit.matching(lookback_since(now, int(max(0.0, now - since))), needle)
        return [r for r in records if parse_ts_or(r.get("ts"), now) >= since]

    def step_records(self, component: str, since: float) -> Iterator[Record]:
        """The component's step records in the day files from ``since`` on (an adaptive
        chain's basis); other records are never parsed."""
        needle = f'"event":"{Event.STEP}","component":"{component}"'.encode()
        return self.audit.matching(format_ts(since), needle)

    def prune(self, retention_days: int, wait: float) -> list[Path]:
        """Delete day files past the retention, after adding what they hold to the counter
        totals in the state file (saved first: a crash in between counts twice, never
        loses a count)."""
        from recovery_cli.counters import Tally, tally

        with self.transaction(wait) as tx:
            doomed = self.audit.prunable(retention_days, self.now())
            if not doomed:
                return []
            records = (r for path in doomed for r in self.audit.read_file(path))
            tx.state.counters = Tally.from_json(tx.state.counters).add(tally(records)).to_json()
            self.state_file.save(tx.state)
            tx.dirty = False
            self.audit.remove_days(doomed)
        return doomed

    def close(self) -> None:
        """Let go of what the backend holds open (the file backend holds nothing)."""

    def aggregates(self) -> Aggregates | None:
        """Counts the backend computes itself (SQL); None: read the trail and count."""
        return None

    def backend_name(self) -> str:
        return "file"

    def backend_up(self) -> bool:
        return True

    def backend_problem(self) -> str | None:
        """Why shared (fleet) state cannot be used: the file backend has none to lose."""
        return None

    def hosts_acting(self) -> int:
        """Other hosts acting on fleet components now (a fleet needs a shared backend)."""
        return 0

    def component_lock(self, component: str) -> FileLock:
        return FileLock(self.root / "locks" / f"{component}.lock")
