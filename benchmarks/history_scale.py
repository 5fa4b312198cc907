"""History at scale: 1,000,000 audit records over 30 days.

Times `history --component X --last 24h --limit 50` (target < 1 s, reading only the files in
the window) and `history --stats` over all 30 days. Usage: python benchmarks/history_scale.py [records]"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from _common import generate_audit, median_seconds, write_config


def main() -> None:
    records = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = write_config(root / "cfg.yml")
        state = root / "state"
        started = time.perf_counter()
        generate_audit(state / "audit", records, 30, time.time())
        state.chmod(0o700)
        size = sum(p.stat().st_size for p in (state / "audit").iterdir())
        print(
            f"generated {records:,} records in 30 day files, {size / 1e6:.0f} MB, in {time.perf_counter() - started:.1f}s"
        )
        base = [
            sys.executable,
            "-m",
            "recovery_cli",
            "--config",
            str(config),
            "--state-dir",
            str(state),
            "history",
        ]
        recent = median_seconds(
            [*base, "--component", "redis", "--last", "24h", "--limit", "50"], 7
        )
        recent_json = median_seconds(
            [*base, "--component", "redis", "--last", "24h", "--limit", "50", "--json"], 7
        )
        stats = median_seconds([*base, "--stats"], 3)
        helptime = median_seconds([sys.executable, "-m", "recovery_cli", "--help"], 7)
    print(f"history -c redis --last 24h --limit 50        {recent:6.3f} s (target < 1 s)")
    print(f"history -c redis --last 24h --limit 50 --json {recent_json:6.3f} s")
    print(f"history --stats (30 days, all records)        {stats:6.3f} s")
    print(f"(recovery --help on this machine now:         {helptime:6.3f} s)")


if __name__ == "__main__":
    main()
