"""Properties of the audit trail under crashes, records of any size and a clock that wanders:
after the next run the chain verifies, no complete record is lost, and the cap never frees
early. A cut below the recorded chain head is named exactly."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recovery_cli.audit import ChainHead, new_id, parse_ts
from recovery_cli.environment import Environment
from recovery_cli.handlers.util import format_ts
from recovery_cli.policy import WINDOW_SECONDS
from recovery_cli.store import Store
from tests.support.clock import FakeClock

DAY = 86400.0
T0 = 1_795_000_000.0
RETENTION = 30


@dataclass(frozen=True)
class Planned:
    size: int
    offset: float  # clock offset from T0 when written
    attempt: bool


planned = st.builds(
    Planned,
    size=st.one_of(st.integers(1, 512), st.integers(1, 1 << 20)),
    offset=st.floats(-60 * DAY, 60 * DAY),
    attempt=st.booleans(),
)


def raw_record(item: Planned, clock: FakeClock) -> dict[str, object]:
    record: dict[str, object] = {
        "ts": format_ts(clock.now()),
        "id": new_id(),
        "event": "attempt" if item.attempt else "note",
        "component": "app",
        "outcome": "started" if item.attempt else None,
        "detail": "d" * item.size,
    }
    return record


def store_at(root: Path, clock: FakeClock) -> Store:
    return Store(root / "state", Environment(environ={}, clock=clock))


def save_head(store: Store, head: ChainHead | None) -> None:
    with store.transaction(5) as tx:
        tx.state.chain_head = head
        tx.changed()


def write_until_crash(
    store: Store, clock: FakeClock, items: list[Planned], crash_at: float
) -> tuple[list[dict[str, object]], ChainHead | None]:
    """Append ``items`` in order; the process dies ``crash_at`` of the way through the bytes
    (the record it was writing is torn). Returns the complete records and the last head."""
    complete: list[dict[str, object]] = []
    head: ChainHead | None = None
    budget = crash_at * sum(item.size + 200 for item in items)
    for item in items:
        clock.current = T0 + item.offset
        record = raw_record(item, clock)
        if budget < item.size + 200:
            path = store.audit._target(str(record["ts"])[:10])
            with path.open("ab") as handle:
                handle.write(
                    b'{"ts":"' + str(record["ts"]).encode() + b'","d":"' + b"x" * int(budget)
                )
            break
        written, head = store.audit.append(record)
        complete.append(written)
        budget -= item.size + 200
    return complete, head


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    items=st.lists(planned, min_size=1, max_size=6),
    crash_at=st.floats(0, 1),
    head_saved=st.booleans(),
    next_offset=st.floats(-60 * DAY, 60 * DAY),
)
def test_after_a_crash_the_next_run_keeps_the_chain_the_records_and_the_cap(
    items: list[Planned], crash_at: float, head_saved: bool, next_offset: float
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clock = FakeClock(T0)
        store = store_at(Path(tmp), clock)
        complete, head = write_until_crash(store, clock, items, crash_at)
        # the run may die between the audit write and saving the head: the head then lags
        save_head(store, head if head_saved else None)
        clock.current = T0 + next_offset
        with store.transaction(5) as tx:
            tx.start_attempt("app")
        store.audit.prune(RETENTION, clock.now())

        now = clock.now()
        survivors = {r["id"] for r in store.audit.read_forward()}
        newest = max([parse_ts(str(r["ts"])) for r in complete] + [now])
        keep_from = min(now, newest) - RETENTION * DAY - DAY
        lost = [r for r in complete if r["id"] not in survivors]
        assert all(parse_ts(str(r["ts"])) < keep_from for r in lost)
        assert store.audit.verify(store.chain_head()) == []

        counted = [
            r
            for r in complete
            if r["event"] == "attempt" and parse_ts(str(r["ts"])) > now - WINDOW_SECONDS
        ]
        window = store.window("app", cap=1000, cooldown=0)
        assert window.used == len(counted) + 1


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, 4096), min_size=2, max_size=8),
    cut=st.floats(0, 0.999),
)
def test_a_cut_below_the_chain_head_is_named(sizes: list[int], cut: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clock = FakeClock(T0)
        store = store_at(Path(tmp), clock)
        head = None
        for size in sizes:
            clock.advance(1)
            _, head = store.audit.append(raw_record(Planned(size, 0, True), clock))
        save_head(store, head)
        path = store.audit.files()[-1]
        data = path.read_bytes()
        path.write_bytes(data[: int(cut * len(data))])
        problems = store.audit.verify(store.chain_head())
        assert any("was cut from" in p for p in problems)
        clock.advance(1)
        with store.transaction(5) as tx:
            tx.start_attempt("app")
        after = store.audit.verify(store.chain_head())
        assert len(after) == 1 and "damage found by a later write" in after[0]
        assert f"from {len(data)} to" in after[0]
