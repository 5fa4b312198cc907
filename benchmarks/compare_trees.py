"""Two checkouts of this project side by side, interleaved in one run, on the same config and
the same 1,000,000-record trail: `--help`, `status --no-probe` (on a one-kind config and on
the shipped one, whose four kinds' settings are all checked) and `history --last 24h`.

Usage: python benchmarks/compare_trees.py OLD_TREE NEW_TREE [rounds]
(e.g. `git worktree add /tmp/old 7442e79`; each tree runs with PYTHONPATH set to it)."""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import generate_audit, installed_env, write_config


def timed(tree: str, argv: list[str]) -> tuple[float, float]:
    """Wall seconds, and CPU seconds (user + system) of the run: the CPU figure moves less
    when other work shares the machine."""
    env = installed_env({"PYTHONPATH": tree})
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "recovery_cli", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tempfile.gettempdir(),
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def main() -> None:
    old, new = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 15
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = str(write_config(root / "cfg.yml"))
        big = root / "big"
        generate_audit(big / "audit", 1_000_000, 30, time.time())
        big.chmod(0o700)
        shipped = str(Path(__file__).resolve().parents[1] / "recovery_config.yml")
        cases = {
            "--help": ["--help"],
            "status --no-probe": [
                "--config",
                config,
                "--state-dir",
                str(root / "empty"),
                "status",
                "--no-probe",
            ],
            "status --no-probe, shipped config (4 kinds)": [
                "--config",
                shipped,
                "--state-dir",
                str(root / "empty-shipped"),
                "status",
                "--no-probe",
            ],
            "history -c redis --last 24h --limit 50": [
                "--config",
                config,
                "--state-dir",
                str(big),
                "history",
                "--component",
                "redis",
                "--last",
                "24h",
                "--limit",
                "50",
            ],
        }
        typer = statistics.median(_typer() for _ in range(rounds))
        print(f"python -c 'import typer': {typer * 1000:.1f} ms; {rounds} rounds, medians")
        for label, argv in cases.items():
            samples: dict[str, list[tuple[float, float]]] = {old: [], new: []}
            for index in range(rounds):
                for tree in (old, new) if index % 2 == 0 else (new, old):
                    samples[tree].append(timed(tree, argv))
            (before, cpu_before), (after, cpu_after) = (
                (
                    statistics.median(w for w, _ in samples[t]),
                    statistics.median(c for _, c in samples[t]),
                )
                for t in (old, new)
            )
            print(
                f"{label:44s} before {before * 1000:7.1f} ms ({before / typer:.2f}x)"
                f"  after {after * 1000:7.1f} ms ({after / typer:.2f}x)"
                f"  cpu {cpu_before * 1000:6.1f} -> {cpu_after * 1000:6.1f} ms"
            )


def _typer() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import typer"], check=False, env=installed_env())
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
