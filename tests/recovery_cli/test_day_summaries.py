"""``history --stats`` through per-day summaries gives what counting every record gives (the
rows and the count of skipped lines), whatever happened to the day files or the summaries
since: edits, misdated records, hostile summaries, a state dir it cannot write."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recovery_cli import history
from recovery_cli.audit import MAX_LINE, SUMMARY_DIR, AuditLog, Digester, ReadStats, Record
from recovery_cli.day_scan import day_records
from recovery_cli.day_summaries import DaySummary, Fingerprint, window_steps
from recovery_cli.environment import Environment
from recovery_cli.handlers.util import format_ts
from recovery_cli.history import HistoryQuery, StatsRow
from recovery_cli.step_stats import StepTally
from recovery_cli.store import Store
from tests.support.cli import Workspace, base_config, command_component
from tests.support.clock import FakeClock
from tests.support.trail import write_trail

DAY = 86400.0
END = 1_795_000_000.0  # 2026-11-18T06:53:20Z: the newest day is a partial one
NOBODY = 65534
VARIED: list[dict[str, Any]] = [  # what a filter or a row could get wrong
    {"component": "redis", "strategy": "reconnect,flush", "failure_type": "oom",
     "outcome": "success", "duration_s": 0.25},
    {"component": None, "strategy": None, "outcome": "failed", "duration_s": "1.5"},
    {"component": 7, "outcome": True, "duration_s": "fast"},  # no strategy at all
    {"component": "redis", "strategy": "", "failure_type": "", "outcome": ["x"],
     "duration_s": 1e308},
    {"component": "chromadb", "strategy": "a,,b", "failure_type": 0, "outcome": "success",
     "duration_s": -2.5},
    {"component": "redis", "strategy": "reconnect", "outcome": "success",
     "duration_s": float("inf")},
    {"component": "None", "strategy": "None", "outcome": "None", "duration_s": 1e-320},
]  # fmt: skip
GARBAGE = [b"not json", b"[1]", b'{"ts":5,"event":"step"}', b"", b'{"ts":"x"} trailing']


def day_of(index: int) -> str:
    return format_ts(END - index * DAY)[:10]


def varied_lines(day: str, seconds: int = 43200) -> bytes:
    lines = [
        json.dumps({"ts": f"{day}T{seconds // 3600:02d}:{n:02d}:00.000000Z", "event": "step", **v})
        for n, v in enumerate(VARIED)
    ]
    return "\n".join(lines).encode() + b"\n" + b"\n".join(GARBAGE) + b"\n"


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    """Five day files (the newest partial), each with hostile steps and lines added."""
    directory = tmp_path / "audit"
    write_trail(directory, 6000, 4, END)
    for path in sorted(directory.glob("*.jsonl")):
        append(path, varied_lines(path.stem))
    return AuditLog(directory)


def queries(audit: AuditLog) -> list[HistoryQuery]:
    days = [p.stem for p in audit.files()]
    whole = f"{days[1]}T00:00:00.000000Z"
    cut = f"{days[1]}T13:30:00.000000Z"
    end_of = f"{days[-2]}T23:59:59.999999Z"
    return [
        HistoryQuery(limit=None),
        HistoryQuery(since=whole, limit=None),
        HistoryQuery(since=cut, until=f"{days[-2]}T06:00:00.000000Z", limit=None),
        HistoryQuery(until=end_of, limit=None),
        HistoryQuery(since="2099-01-01T00:00:00.000000Z", limit=None),
        HistoryQuery(components=("redis",), limit=None),
        HistoryQuery(components=("7", "None"), outcomes=("success", "True"), limit=None),
        HistoryQuery(components=("7", "None"), limit=None),
        HistoryQuery(strategies=("flush",), limit=None),
        HistoryQuery(strategies=("", "None"), limit=None),
        HistoryQuery(strategies=("restart",), outcomes=("failed",), since=cut, limit=None),
        HistoryQuery(events=("attempt",), limit=None),
        HistoryQuery(events=("step", "blocked"), components=("app",), limit=None),
    ]


def by_records(directory: Path, q: HistoryQuery) -> tuple[list[StatsRow], int]:
    """The plain scan: every record of the files in range parsed, then counted."""
    log = AuditLog(directory)
    rows = history.stats(log.read_forward(q.since), q)
    return rows, log.stats.corrupt_lines


def by_summaries(directory: Path, q: HistoryQuery, **keys: Any) -> tuple[list[StatsRow], int]:
    log = AuditLog(directory, **keys)
    rows = history.rows_of(window_steps(log, q.since, q.until, settle_ns=0), q)
    return rows, log.stats.corrupt_lines


def assert_same_as_records(audit: AuditLog) -> None:
    for q in queries(audit):
        plain = by_records(audit.directory, q)
        assert by_summaries(audit.directory, q) == plain, q
        assert plain[0] == naive_rows(list(AuditLog(audit.directory).read_forward(q.since)), q)


def summary_of(audit: AuditLog, path: Path) -> DaySummary | None:
    raw = (audit.directory / SUMMARY_DIR / f"{path.stem}.json").read_bytes()
    summary = DaySummary.decoded(raw, audit.digester)
    fd = os.open(path, os.O_RDONLY)
    try:
        current = Fingerprint.of(fd, audit)
    finally:
        os.close(fd)
    return summary if summary is not None and summary.fingerprint == current else None


def summaries(audit: AuditLog) -> list[str]:
    directory = audit.directory / SUMMARY_DIR
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


# -- the same answers ---------------------------------------------------------------------


def test_summaries_answer_as_the_records_do_before_and_after_the_days_change(
    audit: AuditLog,
) -> None:
    files = audit.files()
    complete = files[:-1]
    assert len(complete) == 4
    rows, corrupt = by_records(audit.directory, HistoryQuery(limit=None))
    assert len(rows) > 10 and corrupt == len(GARBAGE) * len(files)  # worth comparing

    assert_same_as_records(audit)  # the first pass builds the summaries
    assert summaries(audit) == [f"{p.stem}.json" for p in complete]
    assert all(summary_of(audit, p) for p in complete)
    assert_same_as_records(audit)  # and the second reads them

    edited = complete[1]
    text = edited.read_bytes()
    assert b'"outcome":"success"' in text
    edited.write_bytes(text.replace(b'"outcome":"success"', b'"outcome":"failure"', 1))
    assert edited.stat().st_size == len(text)  # the same size: only its times tell
    append(complete[2], varied_lines(complete[2].stem, seconds=3600))
    misdated = varied_lines(complete[1].stem, seconds=7200)  # a clock stepped back
    append(complete[3], misdated)
    assert_same_as_records(audit)
    assert all(summary_of(audit, p) for p in complete)  # rebuilt for the files as they are


def test_the_newest_day_is_always_parsed_and_never_summarized(audit: AuditLog) -> None:
    newest = audit.files()[-1]
    window_steps(audit, None, None, settle_ns=0)
    before = by_records(audit.directory, HistoryQuery(limit=None))
    append(newest, varied_lines(newest.stem, seconds=60))

    assert f"{newest.stem}.json" not in summaries(audit)
    after = by_summaries(audit.directory, HistoryQuery(limit=None))
    assert after == by_records(audit.directory, HistoryQuery(limit=None)) != before


def test_a_whole_day_inside_the_window_is_answered_by_its_summary_alone(
    audit: AuditLog,
) -> None:
    window_steps(audit, None, None, settle_ns=0)
    day = audit.files()[1]
    summary = summary_of(audit, day)
    assert summary is not None
    doubled = StepTally().merge(summary.steps).merge(summary.steps)
    forged = DaySummary(
        summary.day_file, summary.fingerprint, doubled, summary.first_ts, summary.last_ts, 0
    )
    path = audit.directory / SUMMARY_DIR / f"{day.stem}.json"
    path.write_bytes(forged.encoded(Digester()))
    q = HistoryQuery(since=f"{day.stem}T00:00:00.000000Z", limit=None)

    counted = sum(r.runs for r in by_summaries(audit.directory, q)[0])
    keyed = by_summaries(audit.directory, q, key=b"k" * 32)  # digest not under this key

    assert counted == sum(r.runs for r in by_records(audit.directory, q)[0]) + sum(
        runs for runs, _ in summary.steps.counts.values()
    )
    assert keyed == by_records(audit.directory, q)


def test_a_day_file_changed_moments_ago_is_not_summarized_yet(audit: AuditLog) -> None:
    for path in audit.files():
        os.utime(path)  # changed now, by the file system's clock
    rows = history.rows_of(window_steps(audit, None, None), HistoryQuery(limit=None))

    assert rows == by_records(audit.directory, HistoryQuery(limit=None))[0]
    assert summaries(audit) == []


# -- hostile summaries ----------------------------------------------------------------------


def plant_garbage(path: Path, outside: Path) -> None:
    path.write_bytes(b"\x00garbage{")


def plant_wrong_types(path: Path, outside: Path) -> None:
    body = json.loads(path.read_bytes())
    body.pop("digest")
    body["steps"] = [[*entry[:6], "many", entry[7]] for entry in body["steps"]]
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    path.write_text(json.dumps({**body, "digest": Digester().of(canonical)}))


def plant_another_days(path: Path, outside: Path) -> None:
    other = sorted(p for p in path.parent.iterdir() if p != path)[0]
    shutil.copyfile(other, path)


def plant_symlink(path: Path, outside: Path) -> None:
    outside.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(outside)


def plant_huge(path: Path, outside: Path) -> None:
    path.write_bytes(path.read_bytes() + b" " * (2 << 20))


def plant_fifo(path: Path, outside: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def plant_directory(path: Path, outside: Path) -> None:
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize(
    "plant",
    [
        plant_garbage,
        plant_wrong_types,
        plant_another_days,
        plant_symlink,
        plant_huge,
        plant_fifo,
        plant_directory,
    ],
    ids=lambda f: f.__name__.removeprefix("plant_"),
)
def test_a_broken_or_hostile_summary_is_ignored_and_rebuilt(
    audit: AuditLog, tmp_path: Path, plant: Any
) -> None:
    window_steps(audit, None, None, settle_ns=0)
    day = audit.files()[1]
    path = audit.directory / SUMMARY_DIR / f"{day.stem}.json"
    outside = tmp_path / "outside.json"
    plant(path, outside)
    planted = outside.read_bytes() if outside.exists() else None

    assert_same_as_records(audit)
    if plant is not plant_directory:  # a directory there cannot be replaced: parsed each time
        assert path.is_file() and not path.is_symlink() and summary_of(audit, day)
    if planted is not None:
        assert outside.read_bytes() == planted  # the symlink's target was never written


def test_a_symlinked_summaries_directory_is_neither_read_nor_written(
    audit: AuditLog, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (audit.directory / SUMMARY_DIR).symlink_to(elsewhere)

    assert_same_as_records(audit)
    assert list(elsewhere.iterdir()) == []


# -- the reader underneath -----------------------------------------------------------------


def records_both_ways(path: Path) -> tuple[list[Record], int, list[Record], int]:
    log = AuditLog(path.parent)
    expected = list(log.read_file(path))
    stats = ReadStats()
    fd = os.open(path, os.O_RDONLY)
    try:
        got = list(day_records(fd, stats))
    finally:
        os.close(fd)
    return got, stats.corrupt_lines, expected, log.stats.corrupt_lines


FRAGMENTS = [
    b'{"ts":"2026-11-22T10:00:00.000000Z","event":"step","component":"redis"}',
    b'{"ts":"2026-11-22T10:00:01.000000Z","detail":"caf\xc3\xa9 \\ud800 \\u00e9"}',
    b'{"ts":"a"}  \t\r',
    b'{"ts":"2026-11-22T10:00:00.000000Z","event":"attempt","n":-0.5,"ok":true,"x":null}',
    b'{"ts":"a","event":"step","ts":5}',
    b'{"ts":"a","event":"attempt","ts":"b"}',
    b'{"ts":"a","event":"attempt","ts":5}',
    b'{"ts":"a","event":"step","event":"attempt"}',
    b'{"ts":"a","event":"attempt","event":"step"}',
    b'{"ts":"a","event":"steps"}',
    b'{"ts":"a","event": "step"}',
    b'{"ts":"a","event":"\\u0073tep"}',
    b'{"ts":"a","\\u0065vent":"step"}',
    b'{"ts":"a","event":"attempt","n":' + b"7" * 5000 + b"}",
    b'{"ts":"a","event":"attempt","n":01}',
    b'{"ts":"a","event":"attempt","n":1e400}',
    b'{"ts":"a","event":"attempt","t":"tab\there"}',
    b'{"ts":"a","event":"attempt","d":{"event":"step"}}',
    b'{"ts":"a"} x',
    b'{"ts":"a"}{"ts":"b"}',
    b'{"ts":"a",}',
    b'{"ts":5}',
    b'{"event":"step"}',
    b'\xef\xbb\xbf{"ts":"bom"}',
    b' {"ts":"space first"}',
    b"\xff\xfe{\x00",
    b'\x00{"ts":"a"}',
    '{"ts":"utf-16"}'.encode("utf-16-le"),
    b'{"ts":"bad \xff byte"}',
    b'{"ts":"a","n":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b"[1]",
    b'"text"',
    b"",
    b"\r",
    b"{",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=12), st.booleans())
def test_the_block_reader_gives_what_the_trail_reader_gives(lines: list[bytes], torn: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "2026-11-22.jsonl"
        path.write_bytes(b"\n".join(lines) + (b"" if torn or not lines else b"\n"))
        got, corrupt, expected, expected_corrupt = records_both_ways(path)
    assert got == expected
    assert corrupt == expected_corrupt


def line_of(size: int) -> bytes:
    """A record line of exactly ``size`` bytes, newline not counted."""
    head = b'{"ts":"2026-11-22T10:00:00.000000Z","event":"step","detail":"'
    return head + b"x" * (size - len(head) - 2) + b'"}'


@pytest.mark.parametrize("torn", [b"", line_of(MAX_LINE), line_of(MAX_LINE + 1)])
def test_lines_at_the_length_limit_are_read_as_the_trail_reader_reads_them(
    tmp_path: Path, torn: bytes
) -> None:
    path = tmp_path / "2026-11-22.jsonl"
    with path.open("wb") as handle:
        for size in (100, MAX_LINE, MAX_LINE + 1, 100, 3 * MAX_LINE, 100, MAX_LINE - 1):
            handle.write(line_of(size) + b"\n")
        handle.write(torn)
    got, corrupt, expected, expected_corrupt = records_both_ways(path)
    assert (len(got), corrupt) == (len(expected), expected_corrupt)
    assert got == expected and corrupt == 2 + bool(torn)


# -- the tally: filters and exact means ---------------------------------------------------

ODD_VALUES = st.sampled_from(["redis", "a,b", "", "None", None, 7, True, 1.5, ["x"], {"k": 1}])
DURATIONS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([None, 0, "1.5", "fast", True, [1], 10**400]),
)
QUERY_VALUES = st.sampled_from(["redis", "a", "b", "", "None", "7", "True", "success", "x"])


@st.composite
def step_records(draw: st.DrawFn) -> Record:
    record: Record = {
        "ts": draw(st.sampled_from(["2026-11-20T10:00:00.000000Z", "2026-11-21T10:00:00Z"])),
        "event": draw(st.sampled_from(["step", "step", "attempt"])),
        "component": draw(ODD_VALUES),
        "failure_type": draw(ODD_VALUES),
        "outcome": draw(st.one_of(st.just("success"), ODD_VALUES)),
        "duration_s": draw(DURATIONS),
    }
    if draw(st.booleans()):
        record["strategy"] = draw(ODD_VALUES)
    return record


@st.composite
def history_queries(draw: st.DrawFn) -> HistoryQuery:
    few = st.lists(QUERY_VALUES, max_size=2).map(tuple)
    return HistoryQuery(
        components=draw(few),
        outcomes=draw(few),
        strategies=draw(few),
        events=draw(st.lists(st.sampled_from(["step", "attempt"]), max_size=2).map(tuple)),
        until=draw(st.sampled_from([None, "2026-11-20T23:59:59.999999Z"])),
        limit=None,
    )


def seconds_of(value: object) -> Fraction:
    try:
        number = float(value or 0)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return Fraction(0)
    return Fraction(number) if abs(number) != float("inf") and number == number else Fraction(0)


def naive_rows(records: Sequence[Record], q: HistoryQuery) -> list[StatsRow]:
    """The rows by the record filter ``history.query`` uses, summed exactly."""
    runs: dict[tuple[str, str, str], list[Any]] = {}
    for r in records:
        if r["event"] != "step" or not history._matches(r, q) or (q.until and r["ts"] > q.until):
            continue
        key = (str(r.get("component")), str(r.get("strategy")), str(r.get("failure_type") or "-"))
        bucket = runs.setdefault(key, [0, 0, Fraction(0)])
        bucket[0] += 1
        bucket[1] += r.get("outcome") == "success"
        bucket[2] += seconds_of(r.get("duration_s"))
    return [
        StatsRow(c, s, f, n, ok, round(ok / n, 3), round(float(total / n), 3))
        for (c, s, f), (n, ok, total) in sorted(runs.items())
    ]


def chunks(records: list[Record], cuts: list[int]) -> Iterator[list[Record]]:
    edges = [0, *sorted(c % (len(records) + 1) for c in cuts), len(records)]
    for start, stop in itertools.pairwise(edges):
        yield records[start:stop]


@settings(max_examples=200, deadline=None)
@given(st.lists(step_records(), max_size=30), history_queries(), st.lists(st.integers(0, 99)))
def test_tallies_kept_apart_and_added_up_filter_as_the_records_do(
    records: list[Record], q: HistoryQuery, cuts: list[int]
) -> None:
    steps = [r for r in records if r["event"] == "step" and not (q.until and r["ts"] > q.until)]
    total = StepTally()
    for part in chunks(steps, cuts):
        kept = StepTally().add_all(part)
        loaded = StepTally.from_json(json.loads(json.dumps(kept.to_json())))
        assert loaded is not None
        total.merge(loaded)

    expected = naive_rows(records, q)
    assert history.stats(iter(records), q) == expected
    assert history.rows_of(total, q) == expected


# -- retention --------------------------------------------------------------------------


def test_pruning_removes_summaries_with_their_days_and_leftovers(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    write_trail(state / "audit", 2000, 8, END)
    store = Store(state, Environment(environ={}, clock=FakeClock(start=END)))
    window_steps(store.audit, None, None, settle_ns=0)
    directory = state / "audit" / SUMMARY_DIR
    (directory / "2001-01-01.json").write_text("{}")  # its day file is long gone
    (directory / ".2026-11-12.json.999.abcdef12.tmp").write_text("{")  # a killed writer's

    removed = store.prune(3, wait=5)

    kept = store.audit.files()
    assert removed and not any(p.exists() for p in removed) and len(kept) >= 3
    assert summaries(store.audit) == [f"{p.stem}.json" for p in kept[:-1]]
    assert by_summaries(state / "audit", HistoryQuery(limit=None)) == by_records(
        state / "audit", HistoryQuery(limit=None)
    )


def test_pruning_never_follows_a_symlinked_summaries_directory(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    write_trail(audit, 500, 6, END)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / f"{sorted(audit.glob('*.jsonl'))[0].stem}.json"
    victim.write_text("keep me")
    (audit / SUMMARY_DIR).symlink_to(elsewhere)

    removed = AuditLog(audit).prune(2, END)

    assert removed and victim.read_text() == "keep me"


# -- a state dir that cannot be written ----------------------------------------------------


def as_nobody(directory: Path, q: HistoryQuery) -> tuple[list[StatsRow], int, bytes]:
    """``stats_of`` on a read-only store in a child process that cannot write ``directory``:
    (rows, skipped lines, what it wrote to stderr)."""
    with tempfile.TemporaryFile() as errors:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            stats_as_nobody(directory, q, errors.fileno(), write)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        errors.seek(0)
        said = errors.read()
    assert os.waitstatus_to_exitcode(status) == 0, said
    answer = json.loads(data)
    return [StatsRow(**r) for r in answer["rows"]], answer["corrupt"], said


def stats_as_nobody(directory: Path, q: HistoryQuery, errors: int, answer: int) -> None:
    code = 1
    try:
        os.dup2(errors, 2)
        signal.alarm(60)
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        store = Store(directory, Environment(environ={}), read_only=True)
        rows = history.stats_of(store, q)
        found = {"rows": [r.to_json() for r in rows], "corrupt": store.audit.stats.corrupt_lines}
        os.write(answer, json.dumps(found).encode())
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the state dir to nobody")
def test_a_state_dir_it_cannot_write_still_answers_and_says_nothing() -> None:
    top = Path(tempfile.mkdtemp(prefix="recovery-ro-", dir="/tmp"))
    try:
        state = top / "state"
        write_trail(state / "audit", 3000, 4, END)
        log = AuditLog(state / "audit")
        append(log.files()[1], varied_lines(log.files()[1].stem))
        window_steps(log, None, None, settle_ns=0)  # summaries as root's cron left them
        append(log.files()[2], varied_lines(log.files()[2].stem))  # one of them now stale
        for path in (top, state, *state.rglob("*")):
            os.chown(path, NOBODY, NOBODY)
        for directory in (state, state / "audit", state / "audit" / SUMMARY_DIR):
            directory.chmod(0o500)
        (state / "audit" / SUMMARY_DIR / summaries(log)[0]).unlink()  # and one missing
        before = summaries(log)
        stale = (state / "audit" / SUMMARY_DIR / before[1]).read_bytes()

        for q in (HistoryQuery(limit=None), queries(log)[2], queries(log)[6]):
            rows, corrupt, said = as_nobody(state, q)
            assert (rows, corrupt) == by_records(state / "audit", q), q
            assert said == b""
        assert (state / "audit" / SUMMARY_DIR / before[1]).read_bytes() == stale
        assert summaries(log) == before
    finally:
        shutil.rmtree(top)


# -- the command ----------------------------------------------------------------------------


def stats_json(ws: Workspace, *args: str) -> list[dict[str, Any]]:
    result = ws.run("history", "--stats", "--json", *args)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def expected_json(ws: Workspace, q: HistoryQuery) -> list[dict[str, Any]]:
    return [r.to_json() for r in by_records(ws.state / "audit", q)[0]]


def test_the_command_answers_the_same_cold_warm_and_after_an_edit(ws: Workspace) -> None:
    ws.write_config(base_config({"redis": command_component(["true"], {"fix": ["true"]})}))
    ws.state.mkdir(mode=0o700)
    write_trail(ws.state / "audit", 5000, 4, time.time())
    time.sleep(1.1)  # the day files settle (see day_summaries.SETTLE_NS)
    everything = HistoryQuery(limit=None)
    days = AuditLog(ws.state / "audit").files()

    before = expected_json(ws, everything)
    cold = stats_json(ws)
    built = summaries(AuditLog(ws.state / "audit"))
    warm = stats_json(ws)
    edited = days[1].read_text().replace('"outcome":"success"', '"outcome":"failure"', 3)
    days[1].write_text(edited)
    after_edit = stats_json(ws)
    redis_2d = stats_json(ws, "-c", "redis", "--last", "2d")

    assert built == [f"{p.stem}.json" for p in days[:-1]]
    assert before == cold == warm != after_edit
    assert after_edit == expected_json(ws, everything)
    assert redis_2d and {r["component"] for r in redis_2d} == {"redis"}


def test_the_command_answers_when_no_summary_can_be_kept(ws: Workspace) -> None:
    ws.write_config(base_config({"redis": command_component(["true"], {"fix": ["true"]})}))
    ws.state.mkdir(mode=0o700)
    write_trail(ws.state / "audit", 2000, 3, time.time() - 3 * DAY)
    (ws.state / "audit" / SUMMARY_DIR).write_text("a file where the directory would go")

    rows = stats_json(ws)

    assert rows == expected_json(ws, HistoryQuery(limit=None)) and rows
