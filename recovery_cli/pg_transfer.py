"""Moving an audit trail between the state dir's JSONL files and PostgreSQL, unchanged.

``import`` copies a JSONL trail (its chain checked first) into an empty database trail, line
for line: every record keeps its id, fields and ``prev_hash``, so the chain still verifies and
``history`` answers the same. ``export`` writes the database trail back as day files (a record
goes to the newest day file so far, as the file backend writes), which ``history --verify``
on a state dir checks."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from recovery_cli.audit import AuditLog, Digester
from recovery_cli.errors import UsageError
from recovery_cli.pg_store import ROW_COLUMNS, STATE_LOCK, row_columns

BATCH = 5000
COLUMNS = f"{ROW_COLUMNS}, line"


def import_trail(conn: Any, source: AuditLog, digester: Digester) -> int:
    """Copy every line of ``source`` into the empty database trail; the count copied."""
    problems = source.verify()
    if problems:
        raise UsageError(
            f"{source.directory}: the trail's chain is broken ({problems[0]}"
            f"{f' and {len(problems) - 1} more' if len(problems) > 1 else ''}); not imported"
        )
    count, last = 0, ""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (STATE_LOCK,))
        if conn.execute("SELECT 1 FROM recovery_audit LIMIT 1").fetchone() is not None:
            raise UsageError(
                "the database already holds an audit trail; import goes into an empty one"
            )
        with conn.cursor().copy(f"COPY recovery_audit ({COLUMNS}) FROM STDIN") as copy:
            for line in _lines(source):
                copy.write_row((*row_columns(json.loads(line)), line))
                count, last = count + 1, line
        if count:
            seq = conn.execute("SELECT max(seq) FROM recovery_audit").fetchone()[0]
            conn.execute(
                "INSERT INTO recovery_chain (one, head_seq, head_digest) VALUES (true, %s, %s)"
                " ON CONFLICT (one) DO UPDATE SET head_seq = excluded.head_seq,"
                " head_digest = excluded.head_digest",
                (seq, digester.of(last.encode())),
            )
    return count


def _lines(source: AuditLog) -> Iterator[str]:
    for path in source.files():
        with path.open("rb") as handle:
            for raw in handle:
                if raw.strip():
                    yield raw.rstrip(b"\n").decode("utf-8")


def export_trail(conn: Any, target: Path) -> int:
    """Write the database trail as day files in ``target`` (which holds none yet)."""
    from recovery_cli.audit import FILE_PATTERN
    from recovery_cli.statedir import open_private, private_subdir

    private_subdir(target)
    if any(FILE_PATTERN.match(p.name) for p in target.iterdir()):
        raise UsageError(f"{target} already holds audit day files; export into an empty one")
    count, day, cursor = 0, "", 0
    handle: BinaryIO | None = None
    try:
        while True:
            rows = conn.execute(
                "SELECT seq, ts, line FROM recovery_audit WHERE seq > %s ORDER BY seq LIMIT %s",
                (cursor, BATCH),
            ).fetchall()
            for seq, ts, line in rows:
                cursor = seq
                if ts[:10] > day:  # never back to an older file: file order is chain order
                    if handle is not None:
                        _close_durably(handle)
                    day = ts[:10]
                    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
                    handle = os.fdopen(open_private(target / f"{day}.jsonl", flags), "wb")
                assert handle is not None
                handle.write(line.encode() + b"\n")
                count += 1
            if len(rows) < BATCH:
                break
    finally:
        if handle is not None:
            _close_durably(handle)
    return count


def _close_durably(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
