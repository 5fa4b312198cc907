"""Tamper and truncation evidence that holds: records of any size, torn tails of any length,
the chain head, the keyed chain, pruning under a fast clock, and clocks that jump."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recovery_cli.audit import AuditLog, ChainHead, Event
from recovery_cli.environment import Environment
from recovery_cli.handlers.util import format_ts
from recovery_cli.store import Store
from tests.support.cli import Workspace, base_config, child_env, command_component
from tests.support.clock import FakeClock
from tests.support.core import make_core

DAY = 86400.0
T0 = 1_795_000_000.0  # 2026-11-18T...


def record(ts: float, **fields: object) -> dict[str, object]:
    return {"ts": format_ts(ts), "id": "x", "event": "attempt", "component": "app", **fields}


def write_all(log: AuditLog, *records: dict[str, object]) -> ChainHead:
    head = None
    for item in records:
        _, head = log.append(dict(item))
    assert head is not None
    return head


def test_records_larger_than_64_kib_keep_the_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    head = write_all(
        log, record(T0, detail="a" * 200_000), record(T0 + 1), record(T0 + 2, detail="b" * 70_000)
    )
    write_all(log, record(T0 + 3))
    assert log.verify() == []
    assert log.head_damage(head) is None


def test_a_long_torn_tail_moves_aside_alone(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    write_all(log, record(T0), record(T0 + 1))
    path = log.files()[0]
    complete = path.read_bytes()
    fragment = b'{"ts":"' + b"z" * 100_000  # a crash mid-way through a 100 KB record
    with path.open("ab") as handle:
        handle.write(fragment)
    write_all(log, record(T0 + 2))
    assert path.read_bytes().startswith(complete)
    assert len(path.read_bytes().splitlines()) == 3
    (torn,) = (tmp_path / "torn").iterdir()
    assert torn.read_bytes() == fragment
    assert log.verify() == []


def test_a_torn_tail_in_yesterdays_file_is_repaired_when_a_new_day_starts(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    write_all(log, record(T0))
    yesterday = log.files()[0]
    with yesterday.open("ab") as handle:
        handle.write(b'{"ts":"2026-11-18T')
    write_all(log, record(T0 + DAY))
    assert yesterday.read_bytes().endswith(b"\n")
    assert AuditLog(tmp_path).verify() == []


def chained(tmp_path: Path) -> tuple[AuditLog, ChainHead]:
    log = AuditLog(tmp_path)
    head = write_all(log, *(record(T0 + i * 3600, outcome="started") for i in range(30)))
    return log, head


def test_the_chain_head_detects_a_cut_tail(tmp_path: Path) -> None:
    log, head = chained(tmp_path)
    newest = log.files()[-1]
    lines = newest.read_bytes().splitlines(keepends=True)
    newest.write_bytes(b"".join(lines[:-2]))  # a tidy cut: what the chain alone cannot see
    assert [p for p in log.verify() if "chain head" not in p] == []
    assert any("was cut from" in p for p in log.verify(head))


def test_the_chain_head_detects_an_edited_last_record(tmp_path: Path) -> None:
    log, head = chained(tmp_path)
    newest = log.files()[-1]
    text = newest.read_bytes()
    last_start = text.rstrip(b"\n").rfind(b"\n") + 1
    newest.write_bytes(text[:last_start] + text[last_start:].replace(b'"app"', b'"ppa"'))
    assert any("was changed" in p for p in log.verify(head))


def test_the_chain_head_detects_a_deleted_newest_file(tmp_path: Path) -> None:
    log, head = chained(tmp_path)
    log.files()[-1].unlink()
    assert any("is missing" in p for p in log.verify(head))


def test_the_next_run_records_damage_so_the_evidence_outlives_it(ws: Workspace) -> None:
    ws.write_config(
        base_config(
            {"app": command_component(["false"], {"fix": ["false"]})},
            cooldown_seconds=0,
            max_attempts_per_hour=100,
        )
    )
    for _ in range(3):
        ws.run("recover")
    newest = sorted((ws.state / "audit").glob("*.jsonl"))[-1]
    lines = newest.read_bytes().splitlines(keepends=True)
    newest.write_bytes(b"".join(lines[:-3]))
    assert ws.run("recover").returncode == 1
    damaged = ws.events("audit_damaged")
    assert len(damaged) == 1 and "was cut from" in damaged[0]["detail"]
    verify = ws.run("history", "--verify")
    assert verify.returncode == 1 and "damage found by a later write" in verify.stdout
    assert "was cut from" in verify.stdout
    shown = ws.run("history", "--event", "audit_damaged", "--json")
    assert "was cut from" in shown.stdout


def test_a_keyed_chain_detects_re_chaining_without_the_key(tmp_path: Path) -> None:
    key = os.urandom(32)
    log = AuditLog(tmp_path, key=key)
    write_all(log, *(record(T0 + i, outcome="started") for i in range(5)))
    assert log.verify() == []
    # someone without the key edits a record and recomputes every plain sha256 link after it
    path = log.files()[0]
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[2]["outcome"] = "success"
    previous = rows[1]
    forged = []
    import hashlib

    for row in rows:
        if forged:
            row["prev_hash"] = hashlib.sha256(forged[-1].encode()).hexdigest()
        forged.append(json.dumps(row, separators=(",", ":")))
    assert previous  # the first two lines are untouched
    path.write_text("\n".join(forged) + "\n")
    problems = AuditLog(tmp_path, key=key).verify()
    assert problems and problems[0].startswith(f"{path.name}:2:")


def test_a_fast_clock_never_empties_the_trail(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    for day in range(30):
        write_all(log, record(T0 + day * DAY))
    fast = T0 + 29 * DAY + 40 * DAY
    write_all(log, record(fast))
    removed = log.prune(30, fast)
    assert len(removed) <= 1
    kept_days = {p.name[:10] for p in log.files()}
    assert format_ts(T0 + 29 * DAY)[:10] in kept_days  # today's records still count


def test_pruning_still_removes_what_is_really_old(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    for day in range(40):
        write_all(log, record(T0 + day * DAY))
    removed = log.prune(30, T0 + 39 * DAY)
    assert len(removed) == 9 and len(log.files()) == 31


def core_with(tmp_path: Path, cap: int = 3) -> object:
    component = command_component(["false"], {"fix": ["false"]})
    return make_core(
        tmp_path,
        base_config(
            {"app": component, "other": component}, cooldown_seconds=0, max_attempts_per_hour=cap
        ),
    )


def started(core: object) -> int:
    return sum(1 for r in core.records("attempt") if r["outcome"] == "started")  # type: ignore[attr-defined]


def test_an_older_record_written_later_never_hides_the_window(tmp_path: Path) -> None:
    core = core_with(tmp_path)
    for _ in range(3):
        core.recover("app")  # type: ignore[attr-defined]
    now = core.clock.current  # type: ignore[attr-defined]
    core.clock.current = now - 3 * 3600  # type: ignore[attr-defined]
    core.recover("other")  # type: ignore[attr-defined]
    core.clock.current = now + 60  # type: ignore[attr-defined]
    (report,) = core.recover("app")  # type: ignore[attr-defined]
    assert report.reason == "hourly_cap"


def flip_newest_ts(core: object, at: int, bit: int) -> None:
    """Flip one bit of byte ``at`` of the ts of the newest intent record."""
    path = core.store.audit.files()[-1]  # type: ignore[attr-defined]
    lines = path.read_bytes().splitlines(keepends=True)
    for index in range(len(lines) - 1, -1, -1):
        if b'"outcome":"started"' in lines[index]:
            line = bytearray(lines[index])
            line[len(b'{"ts":"') + at] ^= bit
            lines[index] = bytes(line)
            break
    path.write_bytes(b"".join(lines))


def test_one_flipped_bit_in_the_newest_ts_does_not_free_the_cap(tmp_path: Path) -> None:
    core = core_with(tmp_path)
    for _ in range(3):
        core.recover("app")  # type: ignore[attr-defined]
    flip_newest_ts(core, at=2, bit=2)  # 2026 -> 2006: dated twenty years ago
    runs = [core.recover("app")[0].outcome for _ in range(3)]  # type: ignore[attr-defined]
    assert runs.count("failed") == 1 and runs[1:] == ["blocked", "blocked"]


def test_an_unparseable_ts_counts_as_now_and_never_crashes(tmp_path: Path) -> None:
    core = core_with(tmp_path)
    for _ in range(3):
        core.recover("app")  # type: ignore[attr-defined]
    flip_newest_ts(core, at=13, bit=1)  # the ':' after the hour becomes ';'
    (report,) = core.recover("app")  # type: ignore[attr-defined]
    assert report.reason == "hourly_cap"
    problems = core.store.audit.verify()  # type: ignore[attr-defined]
    assert any("unparseable ts" in p for p in problems)


def test_a_malformed_ts_line_never_makes_a_reader_fail(ws: Workspace) -> None:
    ws.write_config(base_config({"app": command_component(["false"], {"fix": ["false"]})}))
    ws.run("recover")
    newest = sorted((ws.state / "audit").glob("*.jsonl"))[-1]
    with newest.open("ab") as handle:
        handle.write(
            b'{"ts":"not a time","event":"attempt","component":"app","outcome":"success"}\n'
        )
    for args in (
        ("status", "--no-probe"),
        ("history",),
        ("metrics",),
        ("history", "--stats"),
        ("recover",),
    ):
        result = ws.run(*args)
        assert result.returncode in (0, 1, 3), (args, result.stderr)
        assert "unexpected error" not in result.stderr


def test_a_clock_stepped_back_across_midnight_is_no_tamper_report(tmp_path: Path) -> None:
    clock = FakeClock(start=1_795_046_400.0 + 600)  # 00:10 UTC
    store = Store(tmp_path / "state", Environment(environ={}, clock=clock))
    with store.transaction(1) as tx:
        tx.record(Event.ATTEMPT, "app", outcome="started")
    clock.current -= 1200  # 23:50 the day before
    with store.transaction(1) as tx:
        tx.record(Event.ATTEMPT, "app", outcome="started")
    assert store.audit.verify(store.chain_head()) == []
    assert len(store.audit.files()) == 1


def test_a_line_of_100_mb_keeps_readers_small(ws: Workspace) -> None:
    ws.write_config(base_config({"app": command_component(["true"], {"fix": ["true"]})}))
    ws.run("disable", "app", "--for", "1s", "--reason", "layout")
    newest = sorted((ws.state / "audit").glob("*.jsonl"))[-1]
    with newest.open("ab") as handle:
        handle.write(b'{"ts":"' + format_ts(T0).encode() + b'","detail":"')
        chunk = b"x" * (1 << 20)
        for _ in range(100):
            handle.write(chunk)
        handle.write(b'"}\n')
    # the peak RSS of the command itself: VmHWM starts afresh at exec, where the rusage's
    # maxrss also counts the test process the child was forked from
    argv = ws.argv("status", "--no-probe")
    peak_reporter = (
        "import atexit, sys\n"
        "def report():\n"
        "    text = open('/proc/self/status').read()\n"
        "    print('VmHWM', text.split('VmHWM:')[1].split()[0], file=sys.stderr)\n"
        "atexit.register(report)\n"
        f"sys.argv = ['recovery', *{argv[3:]!r}]\n"
        "from recovery_cli.cli import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", peak_reporter],
        capture_output=True,
        text=True,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    peak_kib = int(done.stderr.split("VmHWM")[-1].split()[0])
    assert peak_kib < 120 * 1024, f"{peak_kib} KiB"
    history = ws.run("history", "--json")
    assert history.returncode == 0 and "skipped 1 torn or invalid" in history.stderr


@pytest.mark.parametrize("secret", ['p"ä\\ss w0rd', "t0k€n/+=?&%", "x'y\"z\\\u00e9\u2603"])
def test_secrets_leak_in_no_encoding(ws: Workspace, secret: str) -> None:
    probe = ["sh", "-c", 'echo "login failed for $APP_PASSWORD"; exit 2']
    component = command_component(
        probe, {"fix": ["sh", "-c", 'printf "%s" "$APP_PASSWORD"; exit 1']}
    )
    component["settings"]["password_env"] = "APP_PASSWORD"
    ws.write_config(base_config({"app": component}))
    env = {"APP_PASSWORD": secret}
    outputs = [
        ws.run("recover", "--json", env=env),
        ws.run("status", "--json", env=env),
        ws.run("history", "--json", env=env),
        ws.run("--verbose", "recover", env=env),
    ]
    from recovery_cli.redaction import representations

    texts = [o.stdout + o.stderr for o in outputs]
    texts += [
        p.read_text(encoding="utf-8", errors="replace") for p in ws.state.rglob("*") if p.is_file()
    ]
    assert any("***" in t for t in texts)
    for form in representations(secret):
        for text in texts:
            assert form not in text, (form, text[:300])


def keyed_workspace(ws: Workspace, key_file: Path) -> None:
    config = base_config(
        {"app": command_component(["false"], {"fix": ["false"]})},
        cooldown_seconds=0,
        max_attempts_per_hour=100,
    )
    config["audit"] = {"hmac_key_file": str(key_file)}
    ws.write_config(config)


def test_the_cli_keys_the_chain_with_the_configured_key_file(ws: Workspace, tmp_path: Path) -> None:
    key_file = tmp_path / "audit.key"
    key_file.write_bytes(os.urandom(32))
    key_file.chmod(0o600)
    keyed_workspace(ws, key_file)
    for _ in range(2):
        ws.run("recover")
    assert all(r["prev_hash"].startswith("hmac:") for r in ws.records()[1:])
    assert ws.run("history", "--verify").returncode == 0
    newest = sorted((ws.state / "audit").glob("*.jsonl"))[-1]
    rows = [json.loads(line) for line in newest.read_text().splitlines()]
    rows[1]["outcome"] = "forged"
    import hashlib

    lines = [json.dumps(rows[0], separators=(",", ":"))]
    for row in rows[1:]:
        row["prev_hash"] = hashlib.sha256(lines[-1].encode()).hexdigest()
        lines.append(json.dumps(row, separators=(",", ":")))
    newest.write_text("\n".join(lines) + "\n")
    verify = ws.run("history", "--verify")
    assert verify.returncode == 1 and ":2: prev_hash does not match" in verify.stdout


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_a_key_file_others_can_read_is_refused(ws: Workspace, tmp_path: Path, mode: int) -> None:
    key_file = tmp_path / "audit.key"
    key_file.write_bytes(os.urandom(32))
    key_file.chmod(mode)
    keyed_workspace(ws, key_file)
    result = ws.run("recover")
    assert result.returncode == 2 and "chmod 600" in result.stderr
