"""Bounded memory: `recovery watch` over many probe cycles of a healthy command component.

    .venv/bin/python benchmarks/watch_memory.py --cycles 10000

Runs `recovery watch --cycles N --interval 0.001` on a config with one healthy `kind: command`
component (its probe is `true`), in a temporary directory, and samples the watch's resident
set size (VmRSS in /proc) every 0.2 s. Prints the RSS after the warm-up (the first sample
past 5% of the run) and at the end, and the growth between them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECOVERY = str(Path(sys.executable).with_name("recovery"))
CONFIG = """version: 1
components:
  app:
    kind: command
    settings: {probe: ["true"]}
    chain: [fix]
    strategies: {fix: {params: {command: ["true"]}}}
"""


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="watch-memory-") as tmp:
        root = Path(tmp)
        (root / "config.yml").write_text(CONFIG)
        argv = [RECOVERY, "--config", str(root / "config.yml"), "--state-dir", str(root / "s")]
        argv += ["watch", "--cycles", str(args.cycles), "--interval", "0.001"]
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples: list[tuple[float, int]] = []
        while proc.poll() is None:
            kib = rss_kib(proc.pid)
            if kib is not None:
                samples.append((time.monotonic() - started, kib))
            time.sleep(0.2)
        seconds = time.monotonic() - started
    if proc.returncode != 0 or len(samples) < 3:
        print(f"watch exited {proc.returncode} after {seconds:.1f}s", file=sys.stderr)
        return 1
    warm = next(kib for at, kib in samples if at >= seconds * 0.05)
    end = samples[-1][1]
    peak = max(kib for _, kib in samples)
    print(f"{args.cycles} cycles in {seconds:.1f} s ({args.cycles / seconds:.0f} per second)")
    print(
        f"RSS after warm-up {warm / 1024:.1f} MiB, at the end {end / 1024:.1f} MiB, "
        f"peak {peak / 1024:.1f} MiB: growth {(end - warm) / 1024:+.2f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
