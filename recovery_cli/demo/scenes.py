"""The demo's scenes: each breaks one thing in the lab, runs the real ``recovery`` command
against the lab's config and state dir, and says what the trail recorded (each gate's
decision, each step and its outcome)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from recovery_cli.audit import AuditLog
from recovery_cli.demo.lab import Lab
from recovery_cli.demo.labctl import running

Say = Callable[[str], None]
STALE_AGE_SECONDS = 2 * 3600


@dataclass
class Run:
    argv: list[str]
    code: int
    records: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Narrator:
    lab: Lab
    say: Say
    runs: list[Run] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["RECOVERY_CONFIG"] = str(self.lab.config_path)
        env["RECOVERY_STATE_DIR"] = str(self.lab.state_dir)
        env.pop("RECOVERY_HOST", None)
        return env

    def run(self, *args: str) -> Run:
        """``recovery ARGS`` as the user would type it, its output shown as it comes."""
        self.say(f"\n  $ recovery {' '.join(_quoted(a) for a in args)}")
        seen = len(_trail(self.lab))
        done = subprocess.run(
            [sys.executable, "-m", "recovery_cli", *args],
            env=self.env(),
            check=False,
            timeout=120,
        )
        run = Run(list(args), done.returncode, _trail(self.lab)[seen:])
        self.runs.append(run)
        self.say(f"  (exit {done.returncode})")
        for line in decisions(run.records):
            self.say(f"    trail: {line}")
        return run

    def scene(self, title: str, what: str) -> None:
        self.say(f"\n== {title}\n{what}")


def _quoted(arg: str) -> str:
    return f'"{arg}"' if " " in arg else arg


def _trail(lab: Lab) -> list[dict[str, Any]]:
    """The lab's audit trail, oldest first, read as every command reads it."""
    return list(AuditLog(lab.state_dir / "audit").read_forward())


def decisions(records: list[dict[str, Any]]) -> list[str]:
    """One line per record that tells a decision: a gate's refusal, an approval asked or
    given, a step and its result, a lifecycle change."""
    lines = []
    for r in records:
        line = _decision(r)
        if line:
            lines.append(line)
    return lines


def _decision(r: dict[str, Any]) -> str | None:
    event, who = r.get("event"), r.get("component", "")
    if event == "blocked":
        return f"{who}: refused by the {r.get('reason')} gate: {r.get('detail', '')}".rstrip(": ")
    if event == "attempt" and r.get("outcome") == "started" and r.get("override"):
        return f"{who}: limits overridden by {r.get('operator')}: attempt started"
    if event == "attempt" and r.get("outcome") == "started":
        return f"{who}: every gate passed (dependencies, cooldown, cap, lock): attempt started"
    if event == "step":
        return f"{who}: step {r.get('strategy')} -> {r.get('outcome')}"
    if event == "approval_requested":
        return f"{who}: {r.get('strategy')} needs a person: approval {r.get('approval_id')} asked"
    if event == "approved":
        return f"{who}: approved by {r.get('operator')}"
    if event == "state_changed":
        return f"{who}: {r.get('from_state')} -> {r.get('to_state')}"
    return None


# -- breaking things ------------------------------------------------------------------


def kill(lab: Lab, service: str, sig: signal.Signals = signal.SIGKILL) -> int:
    pid = lab.pid(service)
    if pid is None:
        raise RuntimeError(f"{service} is not running")
    os.kill(pid, sig)
    if sig == signal.SIGKILL:
        _wait_gone(pid)
    return pid


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 5
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def fill_scratch(lab: Lab) -> tuple[int, int]:
    """Fill the scratch disk past its 80% limit with stale temp and lock files (two hours
    old), and leave one fresh temp file that cleanup must keep. Returns (files, bytes)."""
    stale = time.time() - STALE_AGE_SECONDS
    size = 1024 * 1024
    count = 7
    for i in range(count):
        path = lab.scratch / f"build-{i}.tmp"
        path.write_bytes(b"\0" * size)
        os.utime(path, (stale, stale))
    lock = lab.scratch / "deploy.lock"
    lock.write_text("4242\n")
    os.utime(lock, (stale, stale))
    (lab.scratch / "upload-in-progress.tmp").write_bytes(b"\0" * 64 * 1024)
    return count + 1, count * size + lock.stat().st_size


# -- the scenes -------------------------------------------------------------------------


def play(lab: Lab, say: Say) -> list[Run]:
    n = Narrator(lab, say)
    n.scene("The lab", _lab_summary(lab))
    n.run("status")
    if lab.has_redis:
        _break_and_recover(n, REDIS_KILLED)
    _break_and_recover(n, WEB_KILLED)
    _break_and_recover(n, WEB_FROZEN)
    if lab.scratch_mounted:
        _disk_full(n)
    else:
        n.scene(
            "A full disk: skipped",
            "  the 8 MiB scratch tmpfs could not be mounted (it needs root and mount rights).",
        )
    _approval(n)
    _loop_guard(n)
    _summary(n)
    return n.runs


def _lab_summary(lab: Lab) -> str:
    lines = [f"  directory  {lab.root}", f"  config     {lab.config_path}"]
    if lab.has_redis:
        lines.append(f"  redis      a private redis-server on 127.0.0.1:{lab.redis_port}")
    else:
        lines.append("  redis      skipped: no redis-server installed")
    lines += [
        f"  web        the lab's own HTTP service on 127.0.0.1:{lab.web_port} (pidfile)",
        "  host       a watched worker process and a scratch disk"
        + (" (an 8 MiB tmpfs)" if lab.scratch_mounted else ""),
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class Breakage:
    """A process broken by a signal, then the component recovered."""

    service: str
    title: str
    story: str  # ``{pid}`` is the broken process
    sig: signal.Signals = signal.SIGKILL


REDIS_KILLED = Breakage(
    "redis",
    "Redis killed",
    "  kill -9 {pid} (redis-server). The chain tries the cheap step first (reconnect),\n"
    "  then restarts through the service block.",
)
WEB_KILLED = Breakage(
    "web", "A service killed", "  kill -9 {pid} (the web service): its probe fails, restart runs."
)
WEB_FROZEN = Breakage(
    "web",
    "A frozen process",
    "  kill -STOP {pid}: the process exists but answers nothing. The probe's timeout\n"
    "  (1 s) turns silence into probe_timeout; restart replaces the process.",
    signal.SIGSTOP,
)


def _break_and_recover(n: Narrator, breakage: Breakage) -> None:
    pid = kill(n.lab, breakage.service, breakage.sig)
    n.scene(breakage.title, breakage.story.format(pid=pid))
    n.run("recover", breakage.service)


def _disk_full(n: Narrator) -> None:
    files, size = fill_scratch(n.lab)
    n.scene(
        "A full disk",
        f"  {files} stale temp and lock files ({size // 1024} KiB, two hours old) fill the\n"
        "  scratch disk past 80%. disk_cleanup removes only matching files older than an\n"
        "  hour, never a held lock, and keeps upload-in-progress.tmp (written just now).",
    )
    n.run("recover", "host")


def _approval(n: Narrator) -> None:
    pid = kill(n.lab, "worker")
    n.scene(
        "A step that needs a person",
        f"  kill -9 {pid} (the worker). process_restart is approval: required, so the run\n"
        "  asks instead of acting (exit 3), and a person approves.",
    )
    n.run("recover", "host")
    n.run("approve")
    approval_id = _first_pending(n.lab)
    if approval_id is None:
        n.say("  no pending approval found")
        return
    n.run("approve", approval_id[:8], "--as", "you")


def _first_pending(lab: Lab) -> str | None:
    for record in reversed(_trail(lab)):
        if record.get("event") == "approval_requested":
            return str(record.get("approval_id"))
    return None


def _loop_guard(n: Narrator) -> None:
    pid = kill(n.lab, "web")
    n.scene(
        "Never a restart loop",
        f"  kill -9 {pid} again. web allows 2 attempts an hour and has used them: the cap\n"
        "  refuses (exit 3) and says when the next slot opens. A person can break glass.",
    )
    n.run("recover", "web")
    n.run("recover", "web", "--override-limits", "--reason", "demo: break-glass", "--as", "you")


def _summary(n: Narrator) -> None:
    n.scene("Where things stand", "  Every component healthy again; the trail holds each step.")
    n.run("status")
    n.run("history", "--last", "1h", "--limit", "12")
    metrics = subprocess.run(
        [sys.executable, "-m", "recovery_cli", "metrics"],
        env=n.env(),
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    n.say("\n  $ recovery metrics | grep -E 'attempts_total|component_up'")
    for line in metrics.splitlines():
        if line.startswith(("infra_recovery_attempts_total", "infra_recovery_component_up")):
            n.say(f"  {line}")
