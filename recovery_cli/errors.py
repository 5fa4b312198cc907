"""Errors the CLI turns into one line and an exit code."""

from __future__ import annotations

from dataclasses import dataclass

from recovery_cli.exitcodes import ExitCode


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

    def __str__(self) -> str:
        where = f"{self.filename}:{self.line}" if self.line else self.filename
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


class StateError(RecoveryError):
    """The state directory cannot be used (permissions, full disk, unreadable files)."""

    exit_code = ExitCode.INTERNAL


class UntrustedStateDir(RecoveryError):
    """The state dir (or a parent) could be changed by another user, or is a symlink."""

    exit_code = ExitCode.USAGE
