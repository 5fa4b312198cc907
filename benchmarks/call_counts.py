"""Python function calls of one `recovery` run (cProfile), for each tree given: a figure that,
unlike time, does not move with the load of the machine.

Usage: python benchmarks/call_counts.py TREE [TREE...] -- RECOVERY-ARGS...
(e.g. `python benchmarks/call_counts.py /tmp/old /work/main -- status --no-probe`)."""

from __future__ import annotations

import subprocess
import sys
import tempfile

from _common import installed_env

COUNT = """
import cProfile, pstats, sys
sys.argv = ["recovery", *sys.argv[1:]]
profile = cProfile.Profile()
profile.enable()
try:
    from recovery_cli.cli import main
    main()
except SystemExit:
    pass
profile.disable()
sys.stderr.write(f"CALLS {pstats.Stats(profile).total_calls}\\n")
"""


def calls(tree: str, args: list[str]) -> int:
    done = subprocess.run(
        [sys.executable, "-c", COUNT, *args],
        env=installed_env({"PYTHONPATH": tree}),
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        check=False,
    )
    line = next(line for line in done.stderr.splitlines() if line.startswith("CALLS "))
    return int(line.split()[1])


def main() -> None:
    split = sys.argv.index("--")
    trees, args = sys.argv[1:split], sys.argv[split + 1 :]
    for tree in trees:
        calls(tree, args)  # the first run compiles and caches the byte code
        print(f"{tree}: {calls(tree, args):,} calls for recovery {' '.join(args)}")


if __name__ == "__main__":
    main()
