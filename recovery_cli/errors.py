"""Exit codes (the contract with cron, CI and people, documented in the playbook) and the
errors the CLI turns into one line and an exit code."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass


class ExitCode(enum.IntEnum):
    OK = 0  # healthy, or recovered
    UNHEALTHY = 1  # recovery ran and the component is still unhealthy; or a `test` check failed
    USAGE = 2  # usage error or invalid config
    BLOCKED = 3  # blocked by policy: cooldown, cap, disabled, approval, dependency, lock
    INTERNAL = 4  # internal error; traceback in the state dir's log
    # healthy again, but a step discarded data it could not give back (counts, ids and the
    # quarantine or backup holding them are in the audit trail)
    RECOVERED_WITH_LOSS = 5
    INTERRUPTED = 130  # Ctrl-C / SIGINT
    TERMINATED = 143  # SIGTERM (128 + 15, as shells report it)


class Terminated(BaseException):
    """Raised in the main thread by the SIGTERM handler (``cli.main``): unwinds like Ctrl-C,
    so ``with`` blocks release their locks and the interrupted step is recorded."""


SEVERITY = (
    ExitCode.INTERNAL,
    ExitCode.UNHEALTHY,
    ExitCode.RECOVERED_WITH_LOSS,
    ExitCode.BLOCKED,
    ExitCode.OK,
)


def interrupt_exit_code(exc: BaseException) -> ExitCode:
    """The exit code for a run ended by Ctrl-C (``KeyboardInterrupt``) or SIGTERM."""
    return ExitCode.TERMINATED if isinstance(exc, Terminated) else ExitCode.INTERRUPTED


def worst(codes: list[ExitCode]) -> ExitCode:
    """Combine per-component outcomes: internal > unhealthy > recovered with loss > blocked
    > ok."""
    for code in SEVERITY:
        if code in codes:
            return code
    return ExitCode.OK


class RecoveryError(Exception):
    exit_code: ExitCode = ExitCode.INTERNAL

    def lines(self) -> list[str]:
        return [str(self)]


@dataclass(frozen=True)
class ConfigProblem:
    filename: str
    line: int
    key: str
    message: str
    column: int = 0  # from 1; 0: not known

    def __str__(self) -> str:
        return self._text(with_column=False)

    def located(self) -> str:
        """``file:line:col: key: message``, as compilers and ``promtool`` print."""
        return self._text(with_column=True)

    def _text(self, with_column: bool) -> str:
        where = f"{self.filename}:{self.line}" if self.line else self.filename
        if with_column and self.line and self.column:
            where += f":{self.column}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(RecoveryError):
    exit_code = ExitCode.USAGE

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class UsageError(RecoveryError):
    exit_code = ExitCode.USAGE


class LockTimeout(RecoveryError):
    """Another recovery process held the state lock for longer than we may wait."""

    exit_code = ExitCode.BLOCKED


class BackendUnavailable(RecoveryError):
    """The shared state database did not answer (or went away mid-run): what lives only
    there (a fleet component's state) is left alone."""

    exit_code = ExitCode.BLOCKED


class StateError(RecoveryError):
    """The state directory cannot be used (permissions, full disk, unreadable files)."""

    exit_code = ExitCode.INTERNAL


class UntrustedStateDir(RecoveryError):
    """The state dir (or a parent) could be changed by another user, or is a symlink."""

    exit_code = ExitCode.USAGE


def exit_code_for(
    exc: BaseException,
    emit: Callable[[str], None],
    redact: Callable[[str], str],
    keep_traceback: Callable[[str], str],
) -> ExitCode:
    """The one place an error becomes lines on stderr and an exit code. Known errors: their
    lines and code. Ctrl-C: 130, SIGTERM: 143. Anything else: one line, the traceback to
    ``keep_traceback`` (which says where it went), exit 4. Never a traceback on screen."""
    code = code_for(exc)
    if isinstance(exc, RecoveryError):
        for line in exc.lines():
            emit(redact(line))
    elif isinstance(exc, KeyboardInterrupt | Terminated):
        emit("interrupted" if code is ExitCode.INTERRUPTED else "terminated")
    else:
        import traceback

        where = keep_traceback(redact("".join(traceback.format_exception(exc))))
        emit(redact(f"unexpected error: {type(exc).__name__}: {exc} ({where})"))
    return code


def code_for(exc: BaseException) -> ExitCode:
    """The exit code ``exc`` ends a run with (what ``exit_code_for`` returns), printing
    nothing: for a heartbeat that reports how the run ended."""
    if isinstance(exc, RecoveryError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt | Terminated):
        return interrupt_exit_code(exc)
    return ExitCode.INTERNAL
