"""The PostgreSQL state backend (``state: {backend: postgres, dsn_env: NAME}``): the store's
interface over one database shared by a fleet, so caps, cooldowns, approvals, disables and
the audit trail hold across hosts.

- **One short transaction per decision.** ``transaction()`` is a database transaction under
  ``pg_advisory_xact_lock``: state read, decided on, written, the audit rows appended, commit.
  No lock outlives it (none is held across a probe or a step); a client that dies or stops
  mid-transaction loses its lock when its session ends or ``idle_in_transaction_session_timeout``
  ends it. Every connection sets ``lock_timeout``, ``statement_timeout`` and that timeout, and
  libpq keepalives.
- **The database's clock.** ``now()`` is the local clock plus the offset to the database's
  ``clock_timestamp()`` measured at connect: every host dates records, and counts windows, on
  one clock.
- **Scopes.** A ``fleet`` component's lifecycle, approvals, disables and degraded modes live in
  the shared ``fleet`` document and its attempt window counts every host's attempts; a ``host``
  component's live in the host's own document (``host:NAME``) and its window counts this host's
  attempts only. A fleet component is acted on by one host at a time (a lease renewed while
  held, lapsing ``LEASE_SECONDS`` after its holder stops).
- **One audit chain**: rows in ``recovery_audit``, each line carrying the digest of the one
  before (as in the JSONL trail), the head kept in ``recovery_chain``.
- **When the database does not answer**, the store works on the local state dir (the file
  backend) and says so (``backend_up``): fleet components are refused (``backend_unavailable``),
  host components recover under local caps, and their records are copied to the database, in
  order and once each, by the first run that reaches it again.

psycopg is imported here only, and this module only when the config names the backend."""

from __future__ import annotations

import contextlib
import json
import math
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recovery_cli.audit import (
    GENESIS_HASH,
    ChainHead,
    Digester,
    Event,
    ReadStats,
    Record,
    check_link,
    map_strings,
    parse_line,
    parse_ts_or,
)
from recovery_cli.config import Config, StateBackend
from recovery_cli.environment import Environment
from recovery_cli.errors import BackendUnavailable, LockTimeout, RecoveryError, StateError
from recovery_cli.handlers.util import format_ts
from recovery_cli.policy import DAY_SECONDS, Window, build_window, lookback_since
from recovery_cli.state_file import State
from recovery_cli.store import Store, Transaction

if TYPE_CHECKING:
    from recovery_cli.counters import Tally
    from recovery_cli.history import HistoryQuery, StatsRow
    from recovery_cli.outcomes import Change

STATE_LOCK = "recovery-cli:state"
FLEET_DOC = "fleet"
PAGE = 1000
LEASE_SECONDS = 5.0  # a fleet component's lease lapses this long after its holder stops
LEASE_RENEW_SECONDS = 1.0
LEASE_POLL_SECONDS = 0.1
COPY_BATCH = 500  # records copied back per transaction
# entries of the state document that belong to whole components (split by scope)
BY_COMPONENT = ("disabled", "components")


def connect(dsn: str, settings: StateBackend) -> Any:
    import psycopg

    options = " ".join(
        [
            f"-c lock_timeout={int(settings.lock_timeout_seconds * 1000)}",
            f"-c statement_timeout={int(settings.statement_timeout_seconds * 1000)}",
            "-c idle_in_transaction_session_timeout="
            f"{int(settings.idle_in_transaction_timeout_seconds * 1000)}",
        ]
    )
    try:
        return psycopg.connect(
            dsn,
            autocommit=True,
            connect_timeout=max(1, round(settings.connect_timeout_seconds)),
            options=options,
            application_name="recovery-cli",
            keepalives=1,
            keepalives_idle=settings.keepalive_idle_seconds,
            keepalives_interval=max(1, settings.keepalive_idle_seconds // 3),
            keepalives_count=3,
        )
    except psycopg.Error as exc:
        why = _first_line(exc)
        raise BackendUnavailable(f"the state database does not answer: {why}") from None


class _Guarded:
    """A connection whose statements raise the tool's errors, not the driver's."""

    def __init__(self, conn: Any, store: PgStore) -> None:
        self._conn = conn
        self._store = store

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        import psycopg

        try:
            return self._conn.execute(*args, **kwargs)
        except psycopg.Error as exc:
            raise self._store.lost(exc) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# -- scopes ---------------------------------------------------------------------------------


SHARED = (*BY_COMPONENT, "approvals", "degraded")


def _component_of(key: str, name: str, entry: Any) -> str:
    """The component an entry of the document's table ``key`` belongs to."""
    if key in BY_COMPONENT:
        return name
    return str(entry.get("component")) if isinstance(entry, Mapping) else ""


def split_state(
    state: State, scopes: Mapping[str, str], loaded_fleet: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the fleet document, this host's document) of a merged state. The fleet document keeps
    every entry of a component this host does not know as fleet-scoped just as it was
    loaded: a host whose config lacks a fleet component (or differs about its scope, during a
    rolling change) never removes or rewrites that component's shared state."""
    data = state.to_json()
    fleet: dict[str, Any] = {"version": data["version"]}
    host = dict(data)
    for key in SHARED:
        kept = {
            name: entry
            for name, entry in (loaded_fleet.get(key) or {}).items()
            if scopes.get(_component_of(key, name, entry)) != "fleet"
        }
        mine = {
            name: entry
            for name, entry in data[key].items()
            if scopes.get(_component_of(key, name, entry)) == "fleet"
        }
        fleet[key] = {**kept, **mine}
        host[key] = {
            name: entry
            for name, entry in data[key].items()
            if scopes.get(_component_of(key, name, entry)) != "fleet"
        }
    host["chain_head"] = None  # the database keeps the chain's head
    return fleet, host


def merge_state(
    fleet: Mapping[str, Any], host: Mapping[str, Any], scopes: Mapping[str, str]
) -> State:
    """This host's view: its own document, with the fleet document's entries of the
    components it knows as fleet-scoped."""
    _check_document(FLEET_DOC, fleet)
    _check_document("host", host)
    merged = dict(host)
    for key in SHARED:
        shared = {
            name: entry
            for name, entry in (fleet.get(key) or {}).items()
            if scopes.get(_component_of(key, name, entry)) == "fleet"
        }
        merged[key] = {**(host.get(key) or {}), **shared}
    try:
        return State.from_json(merged)
    except (ValueError, TypeError, AttributeError) as exc:
        raise _damaged("a", exc) from None


def _check_document(scope: str, doc: object) -> None:
    if not isinstance(doc, Mapping):
        raise _damaged(scope, ValueError("it is not a JSON object"))
    for key in SHARED:
        table = doc.get(key)
        if table is not None and not isinstance(table, Mapping):
            raise _damaged(scope, ValueError(f"{key!r} is not an object"))


def _damaged(scope: str, exc: BaseException) -> StateError:
    return StateError(
        f"the state database holds a damaged {scope} state document ({exc}); look at it with "
        "`SELECT scope, doc FROM recovery_state`, and delete the damaged row to start that "
        "scope afresh"
    )


# -- the audit trail in the database ------------------------------------------------------------


class PgAudit:
    """The audit trail's reading and appending, over ``recovery_audit``."""

    def __init__(self, store: PgStore, redact: Callable[[str], str], key: bytes | None) -> None:
        # not a reference cycle: a store nobody holds is freed at once, and its connection
        # closed with it (a watch makes a store per run)
        self.store: PgStore = weakref.proxy(store)
        self.redact = redact
        self.digester = Digester(key)
        self.stats = ReadStats()
        self._head: tuple[int, str] | None = None  # within a transaction: the chain's head
        self._mirror = True

    def append(self, record: Record) -> tuple[Record, ChainHead | None]:
        conn = self.store.in_transaction()
        head = self._head if self._head is not None else self._read_head(conn)
        record["prev_hash"] = head[1] if head else GENESIS_HASH
        line = self.encode(record)
        seq = conn.execute(
            f"INSERT INTO recovery_audit ({ROW_COLUMNS}, line)"
            f" VALUES ({', '.join(['%s'] * (len(ROW_COLUMNS.split(',')) + 1))}) RETURNING seq",
            (*row_columns(record), line),
        ).fetchone()[0]
        digest = self.digester.of(line.encode())
        conn.execute(
            "INSERT INTO recovery_chain (one, head_seq, head_digest) VALUES (true, %s, %s)"
            " ON CONFLICT (one) DO UPDATE SET head_seq = excluded.head_seq,"
            " head_digest = excluded.head_digest",
            (seq, digest),
        )
        self._head = (seq, digest)
        if self.store.settings.local_audit and self._mirror:  # a copy, chained on its own
            self.store.local_audit.append(dict(record))
        return record, None

    def encode(self, record: Record) -> str:
        clean = map_strings(record, self.redact)
        return self.redact(json.dumps(clean, separators=(",", ":"), default=str))

    def begin(self, mirror: bool = True) -> None:
        """A transaction starts: the chain's head is read again when first needed;
        ``mirror``: with ``local_audit``, records go to the local trail too."""
        self._head = None
        self._mirror = mirror

    def _read_head(self, conn: Any) -> tuple[int, str] | None:
        row = conn.execute("SELECT head_seq, head_digest FROM recovery_chain").fetchone()
        self._head = (int(row[0]), str(row[1])) if row else None
        return self._head

    def head_damage(self, head: ChainHead | None = None) -> str | None:
        """Rows deleted from, or changed at, the end of the trail since the last write."""
        conn = self.store.connection()
        recorded = self._read_head(conn)
        if recorded is None:
            return None
        last = conn.execute(
            "SELECT seq, line FROM recovery_audit WHERE seq <= %s ORDER BY seq DESC LIMIT 1",
            (recorded[0],),
        ).fetchone()
        if last is None or last[0] != recorded[0]:
            return f"the row at seq {recorded[0]} holding the newest record is missing (deleted?)"
        if self.digester.of(last[1].encode()) != recorded[1]:
            return f"the row at seq {recorded[0]} was changed"
        return None

    # -- reading ------------------------------------------------------------------------------

    def read_back(
        self, since: str | None = None, until: str | None = None, contains: bytes | None = None
    ) -> Iterator[Record]:
        return self._rows(since, until, contains, newest_first=True)

    def read_forward(self, since: str | None = None) -> Iterator[Record]:
        return self._rows(since, None, None, newest_first=False)

    def matching(self, since: str, needle: bytes) -> Iterator[Record]:
        return self._rows(since, None, needle, newest_first=False)

    def attempts(self, component: str, since: str, host: str | None) -> list[Record]:
        """A component's attempt records from ``since`` on (this host's only, if given)."""
        return self.events_of(Event.ATTEMPT, component, since, host)

    def events_of(self, event: Event, component: str, since: str, host: str | None) -> list[Record]:
        """A component's records of ``event`` from ``since`` on (this host's only, if given)."""
        sql = "SELECT line FROM recovery_audit WHERE event = %s AND component = %s AND ts >= %s"
        params: list[Any] = [event.value, component, since]
        if host is not None:
            sql += " AND host = %s"
            params.append(host)
        rows = self.store.connection().execute(sql + " ORDER BY seq", params).fetchall()
        return [r for r in (self._parse(row[0]) for row in rows) if r is not None]

    def _rows(
        self, since: str | None, until: str | None, contains: bytes | None, newest_first: bool
    ) -> Iterator[Record]:
        """Pages of ``PAGE`` rows by ``seq`` (keyset): no transaction stays open while the
        caller reads."""
        conn = self.store.connection()
        where, params = ["true"], []
        if since is not None:
            where.append("ts >= %s")
            params.append(since)
        if until is not None:
            where.append("ts <= %s")
            params.append(until)
        if contains is not None:
            where.append("strpos(line, %s) > 0")
            params.append(contains.decode("utf-8", "replace"))
        order, compare = ("DESC", "<") if newest_first else ("ASC", ">")
        cursor: int | None = None
        while True:
            page_where = [*where, f"seq {compare} %s"] if cursor is not None else where
            page_params = [*params, cursor] if cursor is not None else params
            rows = conn.execute(
                f"SELECT seq, line FROM recovery_audit WHERE {' AND '.join(page_where)}"
                f" ORDER BY seq {order} LIMIT {PAGE}",
                page_params,
            ).fetchall()
            for seq, line in rows:
                cursor = seq
                record = self._parse(line)
                if record is not None:
                    yield record
            if len(rows) < PAGE:
                return

    def _parse(self, line: str) -> Record | None:
        return parse_line(line, self.stats)

    def verify(self, head: ChainHead | None = None) -> list[str]:
        problems: list[str] = []
        previous: str | None = None
        conn = self.store.connection()
        cursor = 0
        while True:
            rows = conn.execute(
                f"SELECT seq, line, {ROW_COLUMNS} FROM recovery_audit WHERE seq > %s"
                " ORDER BY seq LIMIT %s",
                (cursor, PAGE),
            ).fetchall()
            for seq, line, *columns in rows:
                data = line.encode() + b"\n"
                problems += check_link(f"seq {seq}", data, previous, self.digester)[0]
                problems += _columns_problem(seq, line, tuple(columns))
                previous = self.digester.of(data)
                cursor = seq
            if len(rows) < PAGE:
                break
        damage = self.head_damage()
        if damage:
            problems.append(f"chain head: {damage}")
        return problems


def _columns_problem(seq: int, line: str, columns: tuple[Any, ...]) -> list[str]:
    """The columns decisions filter on must say what the (chained) line says: an edited
    ``ts``, ``event`` or ``host`` column is tampering the chain alone would not show."""
    try:
        expected = row_columns(json.loads(line))
    except (ValueError, KeyError, TypeError, RecursionError):
        return []  # the line itself is reported by the chain check
    if expected != columns:
        names = [n.strip() for n in ROW_COLUMNS.split(",")]
        changed = [n for n, a, b in zip(names, expected, columns, strict=True) if a != b]
        return [f"seq {seq}: column(s) {', '.join(changed)} differ from the record (edited?)"]
    return []


ROW_COLUMNS = (
    "id, ts, event, component, host, outcome, strategy, attempt_id, reason, failure_type,"
    " duration_s, override"
)


def row_columns(record: Record) -> tuple[Any, ...]:
    """The values of ``ROW_COLUMNS``: what queries filter and count on, beside the line."""

    def text(key: str) -> str | None:
        value = record.get(key)
        return None if value is None else str(value)

    duration = record.get("duration_s")
    seconds = float(duration) if isinstance(duration, int | float) else None
    return (
        str(record["id"]),
        str(record["ts"]),
        str(record["event"]),
        text("component"),
        str(record.get("host") or ""),
        text("outcome"),
        text("strategy"),
        text("attempt_id"),
        text("reason"),
        text("failure_type"),
        seconds if seconds is None or math.isfinite(seconds) else None,
        bool(record.get("override")),
    )


# -- the store ----------------------------------------------------------------------------------


class PgStore(Store):
    """The store over PostgreSQL, with the local state dir (the file backend) beside it: for
    host components' locks, the error log, and to work on while the database is away."""

    def __init__(
        self,
        root: Path,
        env: Environment,
        config: Config,
        dsn: str,
        redact: Callable[[str], str] = lambda s: s,
        read_only: bool = False,
        audit_key: bytes | None = None,
    ) -> None:
        super().__init__(root, env, redact, read_only, audit_key)
        self.redact = redact
        self.settings = config.state
        self.scopes = {name: c.scope for name, c in config.components.items()}
        self.dsn = dsn
        self.pg_audit = PgAudit(self, redact, audit_key)
        self._conn: Any = None
        self._tx_conn: Any = None
        self._offset = 0.0
        self._up: bool | None = None  # whether the database answered; None: not asked yet
        self.backend_error = ""

    # -- the connection -----------------------------------------------------------------------

    @property
    def audit(self) -> Any:
        """The database's trail once it answers, else the state dir's (asked on first use:
        a reader never gets the local trail only because it asked before connecting)."""
        return self.pg_audit if self.reach() else self.local_audit

    @audit.setter
    def audit(self, value: Any) -> None:
        self.local_audit = value  # the file backend's trail, set by ``Store.__init__``

    def connection(self) -> Any:
        """The connection, each statement's database error turned into ``BackendUnavailable``
        (exit 3; ``watch`` goes on to its next run) or ``LockTimeout``, never a traceback."""
        if self._conn is None:
            raise BackendUnavailable(self.backend_error or "the state database is not connected")
        return _Guarded(self._conn, self)

    def lost(self, exc: Exception) -> RecoveryError:
        """What a database error means for this run; a broken connection is dropped (the
        rest of the run works on the state dir, the next run connects again)."""
        import psycopg

        if isinstance(exc, psycopg.errors.LockNotAvailable):
            return LockTimeout("another recovery run holds the state database's lock")
        why = f"the state database failed: {_first_line(exc)}"
        if self._conn is None or self._conn.broken or self._conn.closed:
            self._drop(why)
        return BackendUnavailable(why)

    def in_transaction(self) -> Any:
        if self._tx_conn is None:
            raise StateError("an audit record was written outside a transaction")
        return self._tx_conn

    def reach(self) -> bool:
        """Connect once per store; on the way, copy records written while it was away."""
        if self._up is not None:
            return self._up
        try:
            self._conn = connect(self.dsn, self.settings)
            self._measure_offset()
            self._check_schema()
            self._up = True
            if not self.read_only:
                self._copy_local_records()
        except BackendUnavailable as exc:
            self._drop(str(exc))
        return bool(self._up)

    def _drop(self, why: str) -> None:
        self._up = False
        self.backend_error = why
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def _measure_offset(self) -> None:
        before = self.env.clock.now()
        row = self._conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
        after = self.env.clock.now()
        self._offset = float(row[0]) - (before + after) / 2

    def _check_schema(self) -> None:
        from recovery_cli.pg_schema import LATEST, current_version

        have = current_version(self._conn)
        if have < LATEST:
            raise BackendUnavailable(
                f"the state database's schema is at version {have}, not {LATEST}: "
                "run `recovery state migrate`"
            )

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def now(self) -> float:
        if self._up is None:
            self.reach()
        return self.env.clock.now() + (self._offset if self._up else 0.0)

    # -- transactions and state ---------------------------------------------------------------

    @contextmanager
    def transaction(self, wait: float) -> Iterator[Transaction]:
        if not self.reach():
            with super().transaction(wait) as local:
                yield local
                local.state.unsynced_since = local.state.unsynced_since or _first_ts(local)
            return
        if self.read_only:
            yield Transaction(self, self.load_state())
            return
        import psycopg

        conn = self.connection()
        try:
            with self._local_lock(wait), conn.transaction():
                self._lock(conn, wait)
                fleet, host = self._docs(conn)
                tx = Transaction(self, merge_state(fleet, host, self.scopes))
                self.pg_audit.begin()
                self._tx_conn = conn
                try:
                    yield tx
                finally:
                    self._tx_conn = None
                mirror = tx.dirty and self._save(conn, tx.state, (fleet, host))
        except psycopg.Error as exc:  # the commit itself, or a rollback on a dead connection
            raise self.lost(exc) from None
        if mirror:
            self._mirror(tx.state)
        if self.on_record is not None:
            for record in tx.written:
                self.on_record(record)

    @contextmanager
    def _local_lock(self, wait: float) -> Iterator[None]:
        """With ``local_audit``, the state dir's lock too: the local copy is appended to by
        this host's runs one at a time, whichever backend each is on."""
        if not self.settings.local_audit:
            yield
            return
        from recovery_cli.locking import FileLock

        with FileLock(self.root, directory=True) as lock:
            if not lock.acquire(wait):
                raise LockTimeout(f"another recovery run holds the lock on {self.root}")
            yield

    def _lock(self, conn: Any, wait: float) -> None:

        conn.execute(
            "SELECT set_config('lock_timeout', %s, true),"
            " pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (f"{max(1, int(wait * 1000))}ms", STATE_LOCK),
        )

    def _docs(self, conn: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        rows = conn.execute(
            "SELECT scope, doc FROM recovery_state WHERE scope IN (%s, %s)",
            (FLEET_DOC, self._host_doc),
        ).fetchall()
        found = dict(rows)
        return found.get(FLEET_DOC, {}), found.get(self._host_doc, {})

    @property
    def _host_doc(self) -> str:
        return f"host:{self.env.host}"

    def _load(self, conn: Any) -> State:
        fleet, host = self._docs(conn)
        return merge_state(fleet, host, self.scopes)

    def _save(self, conn: Any, state: State, loaded: tuple[dict[str, Any], dict[str, Any]]) -> bool:
        """Write the documents that changed (only the ones that did); whether this host's
        own document did."""
        fleet, host = split_state(state, self.scopes, loaded[0])
        if self._changed(fleet, loaded[0]):
            self._write_doc(conn, FLEET_DOC, fleet)
        host_changed = self._changed(host, loaded[1])
        if host_changed:
            self._write_doc(conn, self._host_doc, host)
        return host_changed

    def _changed(self, doc: dict[str, Any], before: dict[str, Any]) -> bool:
        return not before or self._payload(doc) != json.dumps(before, sort_keys=True)

    def _payload(self, doc: dict[str, Any]) -> str:
        text = self.redact(json.dumps(map_strings(doc, self.redact), sort_keys=True))
        return json.dumps(json.loads(text), sort_keys=True)

    def _write_doc(self, conn: Any, scope: str, doc: dict[str, Any]) -> None:
        conn.execute(
            "INSERT INTO recovery_state (scope, doc) VALUES (%s, %s::jsonb)"
            " ON CONFLICT (scope) DO UPDATE SET doc = excluded.doc,"
            " updated_at = clock_timestamp()",
            (scope, self._payload(doc)),
        )

    def load_state(self) -> State:
        if not self.reach():
            return super().load_state()
        return self._load(self.connection())

    def chain_head(self) -> ChainHead | None:
        return None if self.reach() else super().chain_head()

    # -- windows --------------------------------------------------------------------------------

    def window(self, component: str, cap: int, cooldown: int, day_cap: int | None = None) -> Window:
        if not self.reach():
            return super().window(component, cap, cooldown, day_cap)
        now = self.now()
        records = self.pg_audit.attempts(
            component, lookback_since(now, cooldown, day_cap), self._host_of(component)
        )
        return build_window(records, component, cap, cooldown, now, day_cap)

    def attempts_since(self, component: str, since: float) -> list[Record]:
        if not self.reach():
            return super().attempts_since(component, since)
        now = self.now()
        start = lookback_since(now, int(max(0.0, now - since)))
        records = self.pg_audit.attempts(component, start, self._host_of(component))
        return [r for r in records if parse_ts_or(r.get("ts"), now) >= since]

    def step_records(self, component: str, since: float) -> Iterator[Record]:
        if not self.reach():
            return super().step_records(component, since)
        start = format_ts(since)
        return iter(self.pg_audit.events_of(Event.STEP, component, start, self._host_of(component)))

    def _host_of(self, component: str) -> str | None:
        """The host whose attempts count for ``component``: None (all) for a fleet one."""
        return None if self.scopes.get(component) == "fleet" else self.env.host

    def prune(self, retention_days: int, wait: float) -> list[Path]:
        """Local day files only; rows in the database are kept (see the playbook)."""
        if not self.reach():
            return super().prune(retention_days, wait)
        return []

    def backend_problem(self) -> str | None:
        return None if self.reach() else self.backend_error

    def backend_name(self) -> str:
        return "postgres"

    def backend_up(self) -> bool:
        return self.reach()

    def aggregates(self) -> PgAggregates | None:
        return PgAggregates(self) if self.reach() else None

    def hosts_acting(self) -> int:
        """Distinct other hosts with an attempt on a fleet component started and not ended,
        whose lease on it is still alive (a host that died stops counting when it lapses)."""
        since = format_ts(self.now() - DAY_SECONDS)
        row = (
            self.connection()
            .execute(
                "SELECT count(DISTINCT a.host) FROM recovery_audit a"
                " JOIN recovery_leases l ON l.key = 'component:' || a.component"
                " AND l.host = a.host AND l.expires_at > clock_timestamp()"
                " WHERE a.event = 'attempt' AND a.outcome = 'started' AND a.ts >= %s"
                " AND a.host <> %s AND NOT EXISTS (SELECT 1 FROM recovery_audit e"
                " WHERE e.attempt_id = a.attempt_id AND e.event = 'attempt'"
                " AND e.outcome <> 'started')",
                (since, self.env.host),
            )
            .fetchone()
        )
        return int(row[0]) if row else 0

    # -- locks ----------------------------------------------------------------------------------

    def component_lock(self, component: str) -> Any:
        if self.scopes.get(component) == "fleet" and self.reach():
            return Lease(self, f"component:{component}")
        return super().component_lock(component)

    # -- records written while the database was away -----------------------------------------

    def _copy_local_records(self) -> None:
        """Append to the database, in order, the local records written since it went away
        (``COPY_BATCH`` a transaction, so no other host waits long); a record already there
        (by its id) is skipped, so a copy cut short is resumed. Then this host's document
        takes the state dir's host-scoped state, which was the one in force meanwhile (a
        disable made while the database was away keeps holding)."""
        local = super().load_state()
        since = local.unsynced_since
        if not since:
            return
        batch: list[Record] = []
        for record in self.local_audit.read_forward(since):
            batch.append(record)
            if len(batch) >= COPY_BATCH:
                self._copy_batch(batch)
                batch = []
        self._copy_batch(batch, local)
        with super().transaction(self.settings.lock_timeout_seconds) as tx:
            tx.state.unsynced_since = None
            tx.changed()

    def _copy_batch(self, records: list[Record], local: State | None = None) -> None:
        conn = self.connection()
        with conn.transaction():
            self._lock(conn, self.settings.lock_timeout_seconds)
            self.pg_audit.begin(mirror=False)  # these are in the local trail already
            self._tx_conn = conn
            try:
                ids = [str(r["id"]) for r in records]
                present = {
                    row[0]
                    for row in conn.execute(
                        "SELECT id FROM recovery_audit WHERE id = ANY(%s)", (ids,)
                    ).fetchall()
                }
                for record in records:
                    if str(record["id"]) not in present:
                        record.pop("prev_hash", None)
                        self.pg_audit.append(record)
                if local is not None:
                    self._restore_host_document(conn, local)
            finally:
                self._tx_conn = None

    def _restore_host_document(self, conn: Any, local: State) -> None:
        fleet, _ = self._docs(conn)
        _, restored = split_state(local, self.scopes, fleet)
        restored["unsynced_since"] = None
        self._write_doc(conn, self._host_doc, restored)

    def _mirror(self, state: State) -> None:
        """This host's copy of the state on the state dir, for the time the database does
        not answer (its host components then go on from what was in force)."""
        from recovery_cli.locking import FileLock

        with contextlib.suppress(RecoveryError, OSError), FileLock(self.root, True) as lock:
            if lock.acquire(self.settings.lock_timeout_seconds):
                local = self.state_file.load()
                self.state_file.save(replace(state, unsynced_since=local.unsynced_since))


def _first_ts(tx: Transaction) -> str | None:
    return str(tx.written[0]["ts"]) if tx.written else None


class Lease:
    """A fleet component acted on by one host at a time: a row in ``recovery_leases`` taken
    in a short transaction when free or lapsed, renewed every ``LEASE_RENEW_SECONDS`` by a
    thread while held, deleted on release. A holder that dies or stops lets it lapse."""

    def __init__(self, store: PgStore, key: str) -> None:
        self.store = store
        self.key = key
        self.holder = uuid.uuid4().hex
        self.acquired = False
        self.waited = 0.0
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self, wait: float) -> bool:
        from recovery_cli.locking import poll

        self.acquired, self.waited = poll(self._take, wait, LEASE_POLL_SECONDS)
        if self.acquired:
            self._renewer = threading.Thread(target=self._renew, daemon=True)
            self._renewer.start()
        return self.acquired

    def _take(self) -> bool:
        row = (
            self.store.connection()
            .execute(
                "INSERT INTO recovery_leases (key, holder, host, expires_at)"
                " VALUES (%s, %s, %s, clock_timestamp() + make_interval(secs => %s))"
                " ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, host = excluded.host,"
                " expires_at = excluded.expires_at"
                " WHERE recovery_leases.expires_at < clock_timestamp() RETURNING holder",
                (self.key, self.holder, self.store.env.host, LEASE_SECONDS),
            )
            .fetchone()
        )
        return row is not None and row[0] == self.holder

    def _renew(self) -> None:
        """On a connection of its own (the run's may be busy in a transaction), opened only
        when the first renewal is due (most leases are released before that), and opened
        again after any failure: a database that restarts while the step runs does not let
        the lease lapse under a holder that is still acting."""
        conn: Any = None
        while not self._stop.wait(LEASE_RENEW_SECONDS):
            try:
                conn = conn or connect(self.store.dsn, self.store.settings)
                conn.execute(
                    "INSERT INTO recovery_leases (key, holder, host, expires_at)"
                    " VALUES (%s, %s, %s, clock_timestamp() + make_interval(secs => %s))"
                    " ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at"
                    " WHERE recovery_leases.holder = excluded.holder",
                    (self.key, self.holder, self.store.env.host, LEASE_SECONDS),
                )
            except Exception:
                with contextlib.suppress(Exception):
                    conn and conn.close()
                conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def release(self) -> None:
        self._stop.set()
        if not self.acquired:
            return
        self.acquired = False
        with contextlib.suppress(Exception):
            self.store.connection().execute(
                "DELETE FROM recovery_leases WHERE key = %s AND holder = %s",
                (self.key, self.holder),
            )


class PgAggregates:
    """``history --stats`` and the metrics' counters as SQL over the row columns: the same
    numbers ``history.stats`` and ``counters.tally`` compute from the records."""

    def __init__(self, store: PgStore) -> None:
        self.conn = store.connection()

    def step_stats(self, query: HistoryQuery) -> list[StatsRow]:
        from recovery_cli.history import stats_row

        if query.events and Event.STEP.value not in query.events:
            return []
        where: list[str] = ["event = 'step'"]
        params: list[object] = []
        for column, value, compare in (("ts", query.since, ">="), ("ts", query.until, "<=")):
            if value is not None:
                where.append(f"{column} {compare} %s")
                params.append(value)
        for column, values in (("component", query.components), ("outcome", query.outcomes)):
            if values:
                where.append(f"{column} = ANY(%s)")
                params.append(list(values))
        if query.strategies:
            where.append("string_to_array(coalesce(strategy, ''), ',') && %s::text[]")
            params.append(list(query.strategies))
        rows = self.conn.execute(
            "SELECT coalesce(component, 'None'), coalesce(strategy, 'None'),"
            " coalesce(nullif(failure_type, ''), '-'), count(*),"
            " count(*) FILTER (WHERE outcome = 'success'), coalesce(sum(duration_s), 0),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY coalesce(duration_s, 0))"
            f" FROM recovery_audit WHERE {' AND '.join(where)} GROUP BY 1, 2, 3",
            params,
        ).fetchall()
        return [
            stats_row(c, s, f, n, ok, total / n, float(median))
            for c, s, f, n, ok, total, median in sorted(rows)
        ]

    def changes(self, since: str | None) -> list[Change]:
        """The lifecycle changes dated ``since`` or later, in the order written."""
        from recovery_cli.outcomes import change_of

        rows = self.conn.execute(
            "SELECT line FROM recovery_audit WHERE event = 'state_changed'"
            " AND (%s::text IS NULL OR ts >= %s) ORDER BY seq",
            (since, since),
        ).fetchall()
        records = (parse_line(line, ReadStats()) for (line,) in rows)
        found = (change_of(r) for r in records if r is not None)
        return [c for c in found if c is not None]

    def first_ts(self) -> str | None:
        row = self.conn.execute("SELECT ts FROM recovery_audit ORDER BY seq LIMIT 1").fetchone()
        return str(row[0]) if row else None

    def tally(self) -> Tally:
        from recovery_cli.counters import DURATION_BUCKETS, ENDED, RECOVERED, Tally, incident_tally

        counted = Tally()
        ended, recovered = sorted(ENDED), sorted(RECOVERED)
        seconds = "CASE WHEN duration_s >= 0 THEN duration_s ELSE 0 END"
        for component, strategy, outcome, n in self.conn.execute(
            "SELECT coalesce(a.component, 'None'), coalesce(nullif(a.strategy, ''),"
            " (SELECT s.strategy FROM recovery_audit s WHERE s.event = 'step'"
            " AND s.attempt_id = a.attempt_id AND s.seq < a.seq ORDER BY s.seq DESC LIMIT 1),"
            " '-'), a.outcome, count(*) FROM recovery_audit a"
            " WHERE a.event = 'attempt' AND a.outcome = ANY(%s) GROUP BY 1, 2, 3",
            (ended,),
        ):
            counted.attempts[(component, strategy, outcome)] += n
        for component, bucket, n, total in self.conn.execute(
            f"SELECT coalesce(component, 'None'), (SELECT count(*) FROM unnest(%s::float8[]) b"
            f" WHERE b < {seconds}), count(*), sum({seconds}) FROM recovery_audit"
            " WHERE event = 'attempt' AND outcome = ANY(%s) GROUP BY 1, 2",
            (list(DURATION_BUCKETS), ended),
        ):
            counts = counted.durations.setdefault((component,), [0.0] * (len(DURATION_BUCKETS) + 2))
            counts[int(bucket)] += n
            counts[-1] += float(total or 0)
        for component, last in self.conn.execute(
            "SELECT coalesce(component, 'None'), max(ts) FROM recovery_audit"
            " WHERE event = 'attempt' AND outcome = ANY(%s) GROUP BY 1",
            (recovered,),
        ):
            when = parse_ts_or(last, 0.0)
            if when:
                counted.last_success[(component,)] = when
        for component, reason, n in self.conn.execute(
            "SELECT coalesce(component, 'None'), coalesce(reason, 'None'), count(*)"
            " FROM recovery_audit WHERE event = 'blocked' GROUP BY 1, 2"
        ):
            counted.blocked[(component, reason)] += n
        for component, n in self.conn.execute(
            "SELECT coalesce(component, 'None'), count(*) FROM recovery_audit"
            " WHERE event = 'attempt' AND outcome = 'started' AND override GROUP BY 1"
        ):
            counted.overrides[(component,)] += n
        return counted.add(incident_tally(self.changes(None)))
