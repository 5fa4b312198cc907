"""One CLI invocation's resolved inputs: config, state dir, store, handlers; built lazily so
``--help`` and usage errors cost nothing."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from recovery_cli.config import (
    Config,
    default_state_dir,
    load_config,
    resolve_config_path,
    secret_values,
)
from recovery_cli.environment import Environment
from recovery_cli.errors import RecoveryError, UsageError
from recovery_cli.handler_calls import Components
from recovery_cli.redaction import Redactor
from recovery_cli.store import Store

ERROR_LOG = "errors.log"


@dataclass
class Session:
    config_path: Path | None = None
    state_dir_option: str | Path | None = None  # as given: an empty one is refused
    verbose: bool = False
    env: Environment = field(default_factory=Environment.from_process)
    # values redacted beyond those the config names (API tokens a reload no longer names)
    extra_secrets: set[str] = field(default_factory=set)

    @cached_property
    def config_file(self) -> Path:
        return resolve_config_path(self.config_path, self.env.environ)

    @cached_property
    def config(self) -> Config:
        config = load_config(self.config_file)
        self._name_host(config)
        return config

    def _name_host(self, config: Config) -> None:
        """The config's ``host:`` names this host, unless ``RECOVERY_HOST`` does."""
        if config.host and not self.env.environ.get("RECOVERY_HOST"):
            self.env = replace(self.env, host=config.host)

    @cached_property
    def state_dir(self) -> Path:
        if self.state_dir_option is not None:
            if not str(self.state_dir_option).strip():
                raise UsageError("--state-dir is empty; give a directory")
            return Path(self.state_dir_option)
        if self.env.environ.get("RECOVERY_STATE_DIR"):
            return Path(self.env.environ["RECOVERY_STATE_DIR"])
        if self.config.state_dir:
            return Path(self.config.state_dir)
        return default_state_dir(self.env.environ)

    def reload(self) -> None:
        """Load the config again (``watch`` on SIGHUP). Raises ``ConfigError`` and keeps
        the loaded one when the new one does not load; the state dir stays as it was."""
        config = load_config(self.config_file)
        self._name_host(config)
        self.state_dir  # noqa: B018 - fixed by the config the run started with
        self.__dict__["config"] = config
        for cached in ("_redactor", "components", "read_only_components", "audit_key"):
            self.__dict__.pop(cached, None)

    @property
    def redactor(self) -> Redactor:
        """Secrets named by the loaded config; none while no config loaded (an error
        handler must never load, and fail on, the config again)."""
        if "config" not in self.__dict__:
            return Redactor()
        if "_redactor" not in self.__dict__:
            secrets = [*secret_values(self.config, self.env.environ), *self.extra_secrets]
            self.__dict__["_redactor"] = Redactor(secrets)
        redactor: Redactor = self.__dict__["_redactor"]
        return redactor

    def redact(self, text: str) -> str:
        return self.redactor(text)

    def keep_redacting(self, values: list[str]) -> None:
        new = set(values) - self.extra_secrets
        if new:
            self.extra_secrets |= new
            self.__dict__.pop("_redactor", None)

    def store(self, read_only: bool = False, env: Environment | None = None) -> Store:
        """The state store the config names: the state dir, or PostgreSQL beside it."""
        env = env or self.env
        backend = self.config.state
        if backend.backend == "postgres" and backend.dsn_env:
            from recovery_cli.pg_store import PgStore

            dsn = self.env.environ.get(backend.dsn_env)
            if not dsn:
                raise UsageError(
                    f"state.dsn_env: environment variable {backend.dsn_env} is not set"
                )
            return PgStore(
                self.state_dir, env, self.config, dsn, self.redact, read_only, self.audit_key
            )
        return Store(
            self.state_dir, env, self.redact, read_only=read_only, audit_key=self.audit_key
        )

    @cached_property
    def audit_key(self) -> bytes | None:
        from recovery_cli.statedir import read_key_file

        path = self.config.audit.hmac_key_file
        return read_key_file(Path(path)) if path else None

    @cached_property
    def components(self) -> Components:
        return Components(self.config, self.env, self.state_dir)

    @cached_property
    def read_only_components(self) -> Components:
        """Handlers that keep nothing on disk (for status and dry runs)."""
        return Components(self.config, self.env, self.state_dir, read_only=True)

    def error_log(self) -> Path | None:
        """Where tracebacks go: the state dir, when it is known, exists and is trusted;
        never anywhere else (a shared temp dir could hold someone's symlink)."""
        from recovery_cli.statedir import check_trusted

        try:
            directory = self._known_state_dir()
            if directory is None or not check_trusted(directory):
                return None
        except RecoveryError:
            return None
        return directory / ERROR_LOG

    def keep_traceback(self, text: str) -> str:
        """Append ``text`` to the error log; says where it went, for the error's line."""
        log = self.error_log()
        return f"traceback in {log}" if log and _append_traceback(log, text) else "no log written"

    def _known_state_dir(self) -> Path | None:
        """The state dir, if it can be told without loading a config that failed."""
        needs_config = self.state_dir_option is None and not self.env.environ.get(
            "RECOVERY_STATE_DIR"
        )
        if needs_config and "config" not in self.__dict__:
            return None
        return self.state_dir


def _append_traceback(log: Path, text: str) -> bool:
    from recovery_cli.statedir import open_private

    try:
        fd = open_private(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"--- pid {os.getpid()} argv {sys.argv[1:]}\n{text}".encode())
        finally:
            os.close(fd)
    except OSError:
        return False
    return True
