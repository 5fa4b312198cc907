"""A size-limited tmpfs for tests that need a disk that really fills up (root only)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def mounted_tmpfs(point: Path, size: str = "1m") -> Iterator[Path]:
    """``point`` with a tmpfs of ``size`` mounted on it, unmounted afterwards; the test is
    skipped where it cannot be mounted."""
    point.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a size-limited tmpfs here (needs root / CAP_SYS_ADMIN)")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)
