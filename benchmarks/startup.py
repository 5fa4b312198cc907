"""Start-up time of `recovery` against `python -c "import typer"` on the same interpreter.

Each case runs through the installed console script, byte code cached, the cases interleaved
round by round so all see the same machine load; medians of wall time and of CPU time (user
+ system), each also as a multiple of the same environment's `import typer`.

Environments: the development venv this script runs in (an editable install), and with
`--regular` also a regular install built under a temp dir: a wheel of this tree, installed
with `pip install --no-deps` into a fresh venv that sees the development venv's packages
through a `.pth` file (the interpreter's own site-packages does not have them).

Also timed: a typer app with one option and one subcommand, the floor of any typer 0.29
command that takes an option (typer builds a pydantic TypeAdapter per option it parses).

Targets: `--help` within 1.5x (shell completion on), `status --no-probe` on the shipped
config within 2.5x with the regular install.

`--instructions` adds one run of each case under valgrind (callgrind): the instructions it
executed, the same on a loaded machine as on an idle one (system calls are not counted).

Usage: python benchmarks/startup.py [runs] [--regular] [--instructions]"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from pathlib import Path

from _common import installed_env, wall_and_cpu, write_config

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "recovery_config.yml"
HELP = "recovery --help"
SHIPPED_STATUS = "status --no-probe, shipped config"
TARGETS = {HELP: 1.5, SHIPPED_STATUS: 2.5}  # multiples of `import typer`
BASELINE = "python -c 'import typer'"
FLOOR = "typer app: one str option, one subcommand"
# what any typer 0.29 command with an option costs: typer builds a pydantic TypeAdapter for
# each option it parses (so pydantic and importlib.metadata are imported)
FLOOR_APP = """
import typer
app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)
@app.callback()
def main(config: str | None = typer.Option(None, "--config")) -> None:
    pass
@app.command()
def run() -> None:
    pass
app()
"""


def cases(root: Path, five: Path) -> dict[str, list[str]]:
    """label -> recovery's arguments."""

    def status(config: Path, state: str) -> list[str]:
        return ["--config", str(config), "--state-dir", str(root / state), "status", "--no-probe"]

    return {
        HELP: ["--help"],
        "status --no-probe, five command components": status(five, "s-five"),
        SHIPPED_STATUS: status(SHIPPED, "s-shipped"),
    }


def argvs(python: Path, root: Path, five: Path) -> dict[str, list[str]]:
    recovery = str(python.with_name("recovery"))
    found = {BASELINE: [str(python), "-c", "import typer"]}
    found[FLOOR] = [str(python), "-c", FLOOR_APP, "--config", "x", "run"]
    found |= {label: [recovery, *args] for label, args in cases(root, five).items()}
    return found


def measure(
    python: Path, root: Path, five: Path, runs: int
) -> dict[str, list[tuple[float, float]]]:
    commands = argvs(python, root, five)
    samples: dict[str, list[tuple[float, float]]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, argv in commands.items():
            samples[label].append(wall_and_cpu(argv))
    return samples


def instructions(python: Path, root: Path, five: Path) -> None:
    """Each case once under callgrind: millions of instructions, and the multiple."""
    counts: dict[str, float] = {}
    for label, argv in argvs(python, root, five).items():
        wall_and_cpu(argv)  # byte code cached first, as an installed tool has it
        valgrind = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv]
        done = subprocess.run(
            valgrind, capture_output=True, text=True, check=False, env=installed_env()
        )
        found = re.search(r"Collected : (\d+)", done.stderr)
        counts[label] = int(found.group(1)) / 1e6 if found else float("nan")
    for label, count in counts.items():
        print(f"{label:46s} {count:8.1f} M instructions  {count / counts[BASELINE]:5.2f}x")


def report(title: str, samples: dict[str, list[tuple[float, float]]]) -> None:
    wall = {k: statistics.median(w for w, _ in v) for k, v in samples.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in samples.items()}
    print(f"\n{title}")
    print(f"{'':46s} {'wall':>9s} {'x':>6s}   {'cpu':>9s} {'x':>6s}   target")
    for label in samples:
        target = TARGETS.get(label)
        mark = ""
        if target is not None:
            met = wall[label] / wall[BASELINE] <= target
            mark = f"{target}x ({'met' if met else 'missed'})"
        print(
            f"{label:46s} {wall[label] * 1000:7.1f}ms {wall[label] / wall[BASELINE]:5.2f}x"
            f"   {cpu[label] * 1000:7.1f}ms {cpu[label] / cpu[BASELINE]:5.2f}x   {mark}"
        )


def regular_install(tmp: Path) -> Path:
    """A wheel of this tree installed (``--no-deps``) into a fresh venv; its python."""
    source = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("recovery_cli", "handlers"):
        shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    dist, venv = tmp / "dist", tmp / "venv"
    wheel_argv = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist)]
    _run([*wheel_argv, str(source)])
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    site = _site_packages(python)
    (site / "development-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(dist.glob("recovery_cli-*.whl"))
    _run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)])
    return python


def _site_packages(python: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def _run(argv: Sequence[str]) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    runs = int(args[0]) if args else 21
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        root = Path(tmp)
        five = write_config(root / "five.yml")
        environments = {"development venv (editable install)": Path(sys.executable)}
        if "--regular" in sys.argv:
            environments["regular install (wheel, --no-deps)"] = regular_install(root / "regular")
        print(f"runs per case: {runs}; medians; x = multiple of the same environment's {BASELINE}")
        for title, python in environments.items():
            report(title, measure(python, root, five, runs))
            if "--instructions" in sys.argv:
                instructions(python, root, five)


if __name__ == "__main__":
    main()
