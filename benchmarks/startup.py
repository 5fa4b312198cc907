"""Start-up time: `recovery --help` and `recovery status --no-probe` against `import typer`.

Targets: --help within 1.5x of `python -c "import typer"`, status --no-probe within 3x.
Usage: python benchmarks/startup.py [runs]"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _common import median_seconds, write_config


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp) / "cfg.yml")
        state = str(Path(tmp) / "state")
        baseline = median_seconds([python, "-c", "import typer"], runs)
        help_time = median_seconds([python, "-m", "recovery_cli", "--help"], runs)
        status_time = median_seconds(
            [
                python,
                "-m",
                "recovery_cli",
                "--config",
                str(config),
                "--state-dir",
                state,
                "status",
                "--no-probe",
            ],
            runs,
        )
    print(f"runs per command: {runs} (median wall time)")
    print(f"python -c 'import typer'      {baseline * 1000:7.1f} ms")
    print(
        f"recovery --help               {help_time * 1000:7.1f} ms  ({help_time / baseline:.2f}x, target 1.5x)"
    )
    print(
        f"recovery status --no-probe    {status_time * 1000:7.1f} ms  ({status_time / baseline:.2f}x, target 3x)"
    )


if __name__ == "__main__":
    main()
