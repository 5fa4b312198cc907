"""One CLI invocation's resolved inputs: config, state dir, store, handlers; built lazily so
``--help`` and usage errors cost nothing."""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from recovery_cli.config import (
    Config,
    default_state_dir,
    load_config,
    resolve_config_path,
    secret_values,
)
from recovery_cli.context import Environment
from recovery_cli.errors import RecoveryError
from recovery_cli.exitcodes import ExitCode
from recovery_cli.runtime import Components
from recovery_cli.store import Store

REDACTED = "***"


@dataclass
class Session:
    config_path: Path | None = None
    state_dir_option: Path | None = None
    verbose: bool = False
    env: Environment = field(default_factory=Environment.from_process)

    @cached_property
    def config_file(self) -> Path:
        return resolve_config_path(self.config_path, self.env.environ)

    @cached_property
    def config(self) -> Config:
        return load_config(self.config_file)

    @cached_property
    def state_dir(self) -> Path:
        if self.state_dir_option is not None:
            return self.state_dir_option
        if self.env.environ.get("RECOVERY_STATE_DIR"):
            return Path(self.env.environ["RECOVERY_STATE_DIR"])
        if self.config.state_dir:
            return Path(self.config.state_dir)
        return default_state_dir(self.env.environ)

    @cached_property
    def secrets(self) -> list[str]:
        try:
            return secret_values(self.config, self.env.environ)
        except RecoveryError:
            return []

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def store(self, read_only: bool = False) -> Store:
        return Store(self.state_dir, self.env, self.redact, read_only=read_only)

    @cached_property
    def components(self) -> Components:
        return Components(self.config, self.env, self.state_dir)

    def error_log(self) -> Path:
        """Where tracebacks go: the state dir when usable, else the temp dir."""
        try:
            directory = self.state_dir
            if os.access(directory, os.W_OK):
                return directory / "errors.log"
        except Exception:  # the config itself may be what failed
            pass
        return Path(tempfile.gettempdir()) / "recovery-cli-errors.log"


@contextmanager
def handle_errors(session: Session, emit: Callable[[str], None]) -> Iterator[None]:
    """Known errors: their lines and exit code. Ctrl-C: 130. Anything else: one line,
    traceback to the error log, exit 4. Never a traceback on screen."""
    try:
        yield
    except RecoveryError as exc:
        for line in exc.lines():
            emit(session.redact(line))
        raise SystemExit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        emit("interrupted")
        raise SystemExit(int(ExitCode.INTERRUPTED)) from None
    except Exception as exc:  # the last line of defence
        log = session.error_log()
        _append_traceback(log, session.redact("".join(traceback.format_exception(exc))))
        emit(session.redact(f"unexpected error: {type(exc).__name__}: {exc} (traceback in {log})"))
        raise SystemExit(int(ExitCode.INTERNAL)) from None


def _append_traceback(log: Path, text: str) -> None:
    try:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, f"--- pid {os.getpid()} argv {sys.argv[1:]}\n{text}".encode())
        finally:
            os.close(fd)
    except OSError:
        pass
