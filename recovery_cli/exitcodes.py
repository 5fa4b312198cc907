"""Exit codes: the contract with cron, CI and people (documented in the playbook)."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0  # healthy, or recovered
    UNHEALTHY = 1  # recovery ran and the component is still unhealthy; or a `test` check failed
    USAGE = 2  # usage error or invalid config
    BLOCKED = 3  # blocked by policy: cooldown, cap, disabled, approval, dependency, lock
    INTERNAL = 4  # internal error; traceback in the state dir's log
    INTERRUPTED = 130  # Ctrl-C / SIGINT
    TERMINATED = 143  # SIGTERM (128 + 15, as shells report it)


class Terminated(BaseException):
    """Raised in the main thread by the SIGTERM handler (``cli.main``): unwinds like Ctrl-C,
    so ``with`` blocks release their locks and the interrupted step is recorded."""


SEVERITY = (ExitCode.INTERNAL, ExitCode.UNHEALTHY, ExitCode.BLOCKED, ExitCode.OK)


def interrupt_exit_code(exc: BaseException) -> ExitCode:
    """The exit code for a run ended by Ctrl-C (``KeyboardInterrupt``) or SIGTERM."""
    return ExitCode.TERMINATED if isinstance(exc, Terminated) else ExitCode.INTERRUPTED


def worst(codes: list[ExitCode]) -> ExitCode:
    """Combine per-component outcomes: internal > unhealthy > blocked > ok."""
    for code in SEVERITY:
        if code in codes:
            return code
    return ExitCode.OK
