"""A hash-chained JSONL audit trail written directly (many records, no fsync per record),
as the file backend would have written it."""

from __future__ import annotations

import json
from pathlib import Path

from recovery_cli.audit import GENESIS_HASH, Digester
from recovery_cli.handlers.util import format_ts

COMPONENTS = ("redis", "chromadb", "openwebui", "system", "app")
EVENTS = ("attempt", "step", "blocked", "attempt")
OUTCOMES = ("started", "success", "failed", "blocked")


def write_trail(audit_dir: Path, records: int, days: int, end: float) -> None:
    audit_dir.mkdir(parents=True, exist_ok=True)
    audit_dir.chmod(0o700)
    digester = Digester()
    previous = GENESIS_HASH
    step = days * 86400 / records
    start = end - days * 86400
    handles: dict[str, object] = {}
    for index in range(records):
        ts = format_ts(start + index * step)
        record = {
            "ts": ts,
            "id": f"{index:012x}",
            "event": EVENTS[index % len(EVENTS)],
            "component": COMPONENTS[index % len(COMPONENTS)],
            "host": f"host-{index % 3}",
            "pid": 1000 + index % 7,
            "strategy": "restart",
            "outcome": OUTCOMES[index % len(OUTCOMES)],
            "trigger": "cron",
            "attempt_id": f"a{index // 2:011x}",
            "duration_s": round((index % 50) / 10, 1),
            "detail": f"record {index}",
            "prev_hash": previous,
        }
        line = json.dumps(record, separators=(",", ":"))
        previous = digester.of(line.encode())
        handle = handles.get(ts[:10])
        if handle is None:
            for other in handles.values():
                other.close()  # type: ignore[attr-defined]
            handle = handles[ts[:10]] = (audit_dir / f"{ts[:10]}.jsonl").open("w")
        handle.write(line + "\n")  # type: ignore[attr-defined]
    for handle in handles.values():
        handle.close()  # type: ignore[attr-defined]
