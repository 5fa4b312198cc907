"""Run the real ``recovery`` command in a subprocess, the way cron and people do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass
class Workspace:
    """A config file and a state dir in a temp directory, and a way to run the CLI on them."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "recovery_config.yml"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def write_config(self, data: Mapping[str, Any] | str) -> Path:
        text = data if isinstance(data, str) else yaml.safe_dump(dict(data), sort_keys=False)
        self.config.write_text(text)
        return self.config

    def argv(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "recovery_cli",
            "--config",
            str(self.config),
            "--state-dir",
            str(self.state),
            *args,
        ]

    def run(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_env(env),
            stdin=subprocess.DEVNULL,
        )

    def popen(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(env),
            stdin=subprocess.DEVNULL,
        )

    def records(self) -> list[dict[str, Any]]:
        """Every audit record, oldest first (fails the test on a corrupt line)."""
        rows = []
        for path in sorted((self.state / "audit").glob("*.jsonl")):
            for line in path.read_text().splitlines():
                rows.append(json.loads(line))
        return rows

    def events(self, event: str, component: str | None = None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.records()
            if r["event"] == event and (component is None or r["component"] == component)
        ]


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECOVERY_")}
    env["USER"] = env.get("USER", "tester")
    env.update(extra or {})
    return env


def command_component(
    probe: Sequence[str], strategies: Mapping[str, Sequence[str]], **extra: Any
) -> dict[str, Any]:
    """A ``kind: command`` component block."""
    block: dict[str, Any] = {
        "kind": "command",
        "settings": {"probe": list(probe)},
        "chain": list(strategies),
        "strategies": {
            name: {"params": {"command": list(argv)}} for name, argv in strategies.items()
        },
    }
    block.update(extra)
    return block


def base_config(components: Mapping[str, Any], **defaults: Any) -> dict[str, Any]:
    merged = {
        "cooldown_seconds": 300,
        "max_attempts_per_hour": 3,
        "lock_wait_seconds": 30,
        "retry": {"attempts": 1, "initial_delay": 0, "jitter": False},
    }
    merged.update(defaults)
    return {"version": 1, "defaults": merged, "components": dict(components)}


def run_into_head(ws: Workspace, *args: str) -> tuple[int, str]:
    """Run the CLI as ``recovery ARGS | head -1`` would: read one line, close the pipe.
    Returns the exit code and stderr."""
    proc = subprocess.Popen(
        ws.argv(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    return proc.wait(timeout=120), stderr


INJECTED_FAULT = """\
import recovery_cli.status as status


def _fault(*args, **kwargs):
    raise RuntimeError("injected fault")


status.component_status = _fault
"""


def with_injected_fault(root: Path) -> dict[str, str]:
    """An environment whose interpreter breaks ``status`` on purpose (a ``sitecustomize``
    on PYTHONPATH): the one way left to reach the internal-error path from outside."""
    shim = root / "fault"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(INJECTED_FAULT)
    return {
        "PYTHONPATH": os.pathsep.join(p for p in (str(shim), os.environ.get("PYTHONPATH", "")) if p)
    }


class Lines:
    """The stderr lines of a running watch, read by a thread as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.proc = proc
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, needle: str, timeout: float = 30, after: int = 0) -> str:
        """The first line from index ``after`` on that holds ``needle``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                if needle in line:
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no line with {needle!r} in {self.lines}")
