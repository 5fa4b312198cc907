"""The README's tour, pasted in order into one shell against the demo's lab: every line exits
as its comment says (``(exit N`` in the comment, else 0)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_LAB = "/tmp/recovery-demo"
EXIT = re.compile(r"#.*\(exit (\d+)")

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


def tour_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- tour -->", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def expected_exit(line: str) -> int:
    found = EXIT.search(line)
    return int(found.group(1)) if found else 0


def test_the_tour_has_the_lines_a_newcomer_needs() -> None:
    lines = tour_lines()
    assert lines[0].startswith("recovery demo --keep")
    assert lines[-1].startswith("recovery demo --clean")
    assert any(expected_exit(line) != 0 for line in lines)  # the annotations are read


def test_every_tour_line_exits_as_the_readme_says(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    lines = [line.replace(README_LAB, str(lab)) for line in tour_lines()]
    codes = tmp_path / "codes"
    script = "\n".join(f'{line}\necho "{i} $?" >> {codes}' for i, line in enumerate(lines))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    for name in ("RECOVERY_CONFIG", "RECOVERY_STATE_DIR", "RECOVERY_HOST", "NO_COLOR"):
        env.pop(name, None)
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    got = dict(line.split() for line in codes.read_text().splitlines())
    for i, line in enumerate(lines):
        assert got.get(str(i)) == str(expected_exit(line)), (
            line,
            got.get(str(i)),
            done.stderr[-2000:],
        )
    assert not lab.exists(), "the tour's last line removes the lab"
