"""History at scale: 1,000,000 audit records over 30 days.

Times `history --component X --last 24h --limit 50` (target < 1 s, reading only the files in
the window) and `history --stats` over all 30 days (target < 1 s): cold (the run that builds
the per-day summaries; medians over runs that each start without them), warm (the summaries
kept), warm over `--last 7d` (the window's first day is parsed), and with no summary able to
be kept (a file where `audit/summaries/` would go: every day parsed, each run). The trail
ends now, so the newest day file (parsed by every run) grows with the time of day (UTC).
Usage: python benchmarks/history_scale.py [records]"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import generate_audit, median_seconds, write_config

SETTLE_SECONDS = 1.1  # a day file's summary is kept once it has not changed for 1 s


def main() -> None:
    records = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = write_config(root / "cfg.yml")
        state = root / "state"
        started = time.perf_counter()
        generate_audit(state / "audit", records, 30, time.time())
        generated = time.monotonic()
        state.chmod(0o700)
        size = sum(p.stat().st_size for p in (state / "audit").iterdir())
        newest = max((state / "audit").iterdir()).read_bytes().count(b"\n")
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
        time.sleep(max(0.0, SETTLE_SECONDS - (time.monotonic() - generated)))
        summaries = state / "audit" / "summaries"
        cold = statistics.median(cold_run([*base, "--stats"], summaries) for _ in range(3))
        kept = len(list(summaries.iterdir()))
        warm = median_seconds([*base, "--stats"], 5)
        week = median_seconds([*base, "--stats", "--last", "7d"], 5)
        shutil.rmtree(summaries)
        summaries.write_text("not a directory: no summary can be kept\n")
        unkept = median_seconds([*base, "--stats"], 3)
        helptime = median_seconds([sys.executable, "-m", "recovery_cli", "--help"], 7)
    rows = [
        ("history -c redis --last 24h --limit 50", recent, " (target < 1 s)"),
        ("history -c redis --last 24h --limit 50 --json", recent_json, ""),
        (f"history --stats, cold (builds {kept} summaries)", cold, ""),
        ("history --stats, warm (30 days, all records)", warm, " (target < 1 s)"),
        ("history --stats --last 7d, warm", week, ""),
        ("history --stats, no summary can be kept", unkept, ""),
        ("(recovery --help on this machine now)", helptime, ""),
    ]
    for label, seconds, note in rows:
        print(f"{label:<47}{seconds:6.3f} s{note}")
    print(f"(every --stats run parses the newest day file: {newest:,} records now)")


def cold_run(argv: list[str], summaries: Path) -> float:
    shutil.rmtree(summaries, ignore_errors=True)
    return median_seconds(argv, 1)


if __name__ == "__main__":
    main()
