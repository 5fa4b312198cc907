"""The audit trail's own guarantees: torn-tail repair, hash chain, reading windows, pruning."""

from __future__ import annotations

import json
from pathlib import Path

from recovery_cli.audit import AuditLog
from recovery_cli.handlers.util import format_ts

DAY = 86400.0
T0 = 1_795_000_000.0


def write(log: AuditLog, ts: float, **fields: object) -> None:
    log.append({"ts": format_ts(ts), "id": "x", "event": "attempt", "component": "app", **fields})


def test_torn_tail_is_repaired_by_the_next_writer(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    write(log, T0)
    path = next(tmp_path.glob("*.jsonl"))
    with path.open("ab") as handle:
        handle.write(b'{"ts":"2026-11-23T00:00:00.000000Z","event":"att')  # a crash mid-record
    reader = AuditLog(tmp_path)
    assert len(list(reader.read_back())) == 1 and reader.stats.corrupt_lines == 1
    write(log, T0 + 1)
    lines = path.read_text().splitlines()
    assert [json.loads(line)["ts"] for line in lines] == [format_ts(T0), format_ts(T0 + 1)]
    assert list((tmp_path / "torn").iterdir()), "the torn fragment is kept aside"
    assert AuditLog(tmp_path).verify() == []


def test_hash_chain_detects_an_edited_line(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    for i in range(3):
        write(log, T0 + i, outcome="failed")
    path = next(tmp_path.glob("*.jsonl"))
    path.write_text(path.read_text().replace('"failed"', '"success"', 1))
    problems = AuditLog(tmp_path).verify()
    assert len(problems) == 1 and ":2:" in problems[0]


def test_hash_chain_spans_day_files_and_detects_a_removed_line(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    for day in range(3):
        write(log, T0 + day * DAY)
        write(log, T0 + day * DAY + 1)
    assert len(log.files()) == 3 and log.verify() == []
    middle = log.files()[1]
    middle.write_text(middle.read_text().splitlines(keepends=True)[1])
    assert AuditLog(tmp_path).verify()


def test_read_back_stops_at_the_window_and_filters_by_component(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    for i in range(10):
        write(log, T0 + i * 600)
        log.append(
            {"ts": format_ts(T0 + i * 600 + 1), "id": "y", "event": "attempt", "component": "other"}
        )
    since = format_ts(T0 + 9 * 600 - 3600)
    rows = list(log.read_back(since=since, contains=b'"component":"app"'))
    assert [r["component"] for r in rows] == ["app"] * 7
    assert rows[0]["ts"] > rows[-1]["ts"]


def test_retention_prunes_old_day_files(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    for day in range(40):
        write(log, T0 + day * DAY)
    removed = log.prune(30, T0 + 39 * DAY)
    assert len(removed) == 9 and len(log.files()) == 31


def test_secrets_are_redacted_before_writing(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, redact=lambda s: s.replace("hunter2", "***"))
    write(log, T0, detail="auth failed for password hunter2")
    text = next(tmp_path.glob("*.jsonl")).read_text()
    assert "hunter2" not in text and "***" in text
