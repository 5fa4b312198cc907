"""Load and validate ``recovery_config.yml``.

Every problem is reported as ``file:line: key.path: message``; all of them at once, so an
operator fixes a broken config in one pass.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from recovery_cli import yamlpos
from recovery_cli.errors import ConfigError, ConfigProblem
from recovery_cli.registry import KINDS, HandlerUnavailable, config_validator

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
ComponentName = Annotated[str, Field(pattern=NAME_PATTERN)]
Argv = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
PositiveSeconds = Annotated[float, Field(gt=0)]
SECRET_KEY_PATTERN = re.compile(
    r"(password|passwd|secret|token|api_key|apikey|credential)s?$", re.I
)
URL_PASSWORD_PATTERN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]+@", re.I)
DEFAULT_CONFIG_PATHS = (Path("recovery_config.yml"), Path("/etc/recovery-cli/recovery_config.yml"))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryPolicy(Strict):
    attempts: int = Field(3, ge=1, le=20)
    initial_delay: float = Field(1.0, ge=0)
    max_delay: float = Field(30.0, ge=0)
    multiplier: float = Field(2.0, ge=1)
    jitter: bool = True


class Defaults(Strict):
    cooldown_seconds: int = Field(300, ge=0)
    max_attempts_per_hour: int = Field(3, ge=1)
    step_timeout_seconds: PositiveSeconds = 60.0
    probe_timeout_seconds: PositiveSeconds = 10.0
    approval_ttl_seconds: int = Field(3600, ge=1)
    lock_wait_seconds: float = Field(10.0, ge=0)
    retry: RetryPolicy = RetryPolicy()


class AuditConfig(Strict):
    retention_days: int = Field(30, ge=1)


class StrategyConfig(Strict):
    approval: Literal["auto", "required"] = "auto"
    params: dict[str, Any] = Field(default_factory=dict)
    timeout_seconds: PositiveSeconds | None = None
    retry: RetryPolicy | None = None


class ServiceConfig(Strict):
    method: Literal["command", "systemd", "docker", "none"] = "none"
    unit: str | None = None
    container: str | None = None
    base_url: str | None = None
    restart: Argv | None = None
    start: Argv | None = None
    stop: Argv | None = None
    timeout_seconds: PositiveSeconds = 30.0
    ready_timeout_seconds: PositiveSeconds = 60.0

    @model_validator(mode="after")
    def _method_fields(self) -> ServiceConfig:
        if self.method == "systemd" and not self.unit:
            raise ValueError("method systemd needs 'unit'")
        if self.method == "docker" and not self.container:
            raise ValueError("method docker needs 'container'")
        if self.method == "command" and not (self.restart or (self.start and self.stop)):
            raise ValueError("method command needs 'restart', or both 'start' and 'stop'")
        return self


class ComponentConfig(Strict):
    kind: str
    priority: Literal["critical", "high", "medium", "low"] = "medium"
    mode: Literal["auto", "approve", "shadow"] = "auto"
    depends_on: list[ComponentName] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)
    service: ServiceConfig | None = None
    chain: list[str] = Field(min_length=1)
    on_failure: dict[str, Annotated[list[str], Field(min_length=1)]] = Field(default_factory=dict)
    strategies: dict[str, StrategyConfig] = Field(default_factory=dict)
    cooldown_seconds: int | None = Field(None, ge=0)
    max_attempts_per_hour: int | None = Field(None, ge=1)
    step_timeout_seconds: PositiveSeconds | None = None
    probe_timeout_seconds: PositiveSeconds | None = None

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r} (known: {', '.join(sorted(KINDS))})")
        return kind


class Hook(Strict):
    command: Argv
    timeout_seconds: PositiveSeconds = 30.0


class DegradedMode(Strict):
    component: ComponentName
    capabilities: dict[str, str] = Field(default_factory=dict)
    on_enter: Hook | None = None
    on_exit: Hook | None = None


class Alerting(Strict):
    alertmanager_url: str | None = None
    webhook_url: str | None = None
    timeout_seconds: PositiveSeconds = 3.0


class Config(Strict):
    version: Literal[1]
    state_dir: str | None = None
    defaults: Defaults = Defaults()
    audit: AuditConfig = AuditConfig()
    components: dict[ComponentName, ComponentConfig] = Field(min_length=1)
    degraded_modes: dict[ComponentName, DegradedMode] = Field(default_factory=dict)
    alerting: Alerting = Alerting()

    # Derived per-component values, so nobody re-implements the default fallback.
    def cooldown(self, name: str) -> int:
        value = self.components[name].cooldown_seconds
        return self.defaults.cooldown_seconds if value is None else value

    def hourly_cap(self, name: str) -> int:
        value = self.components[name].max_attempts_per_hour
        return self.defaults.max_attempts_per_hour if value is None else value

    def step_timeout(self, name: str, strategy: str) -> float:
        own = self.strategy(name, strategy).timeout_seconds
        if own is not None:
            return own
        return self.components[name].step_timeout_seconds or self.defaults.step_timeout_seconds

    def probe_timeout(self, name: str) -> float:
        return self.components[name].probe_timeout_seconds or self.defaults.probe_timeout_seconds

    def strategy(self, name: str, strategy: str) -> StrategyConfig:
        return self.components[name].strategies.get(strategy, StrategyConfig())

    def retry(self, name: str, strategy: str) -> RetryPolicy:
        return self.strategy(name, strategy).retry or self.defaults.retry

    def needs_approval(self, name: str, strategy: str) -> bool:
        if self.components[name].mode == "approve":
            return True
        return self.strategy(name, strategy).approval == "required"

    def chain_for(self, name: str, failure_type: str | None) -> list[str]:
        component = self.components[name]
        if failure_type and failure_type in component.on_failure:
            return list(component.on_failure[failure_type])
        return list(component.chain)

    def modes_for(self, name: str) -> list[str]:
        return [mode for mode, spec in self.degraded_modes.items() if spec.component == name]


def resolve_config_path(explicit: Path | None, environ: Mapping[str, str]) -> Path:
    if explicit is not None:
        return explicit
    if environ.get("RECOVERY_CONFIG"):
        return Path(environ["RECOVERY_CONFIG"])
    for candidate in DEFAULT_CONFIG_PATHS:
        if candidate.exists():
            return candidate
    tried = ", ".join(str(p) for p in DEFAULT_CONFIG_PATHS)
    raise ConfigError(
        [ConfigProblem("-", 0, "", f"no config found (tried --config, $RECOVERY_CONFIG, {tried})")]
    )


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(str(path), 0, "", f"cannot read config: {exc.strerror}")]
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigProblem(str(path), 0, "", "config is not UTF-8 text")]) from exc
    return parse_config(text, str(path))


def parse_config(text: str, filename: str) -> Config:
    document = yamlpos.load(text, filename)
    if not isinstance(document.data, dict):
        raise ConfigError([ConfigProblem(filename, 1, "", "the config must be a mapping")])
    try:
        config = Config.model_validate(document.data)
    except ValidationError as exc:
        raise ConfigError(_pydantic_problems(exc, document)) from None
    problems = [
        ConfigProblem(filename, document.line_of(path), yamlpos.format_path(path), message)
        for path, message in _cross_checks(config)
    ]
    if problems:
        raise ConfigError(problems)
    return config


def _pydantic_problems(exc: ValidationError, document: yamlpos.Document) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(
            ConfigProblem(
                document.filename, document.line_of(loc), yamlpos.format_path(loc), message
            )
        )
    return problems


Path_ = tuple[str | int, ...]


def _cross_checks(config: Config) -> list[tuple[Path_, str]]:
    problems: list[tuple[Path_, str]] = []
    for name, component in config.components.items():
        problems += _component_checks(config, name, component)
    problems += _cycle_checks(config)
    for mode, spec in config.degraded_modes.items():
        if spec.component not in config.components:
            problems.append(
                (("degraded_modes", mode, "component"), f"unknown component {spec.component!r}")
            )
    return problems


def _component_checks(
    config: Config, name: str, component: ComponentConfig
) -> list[tuple[Path_, str]]:
    base: Path_ = ("components", name)
    problems: list[tuple[Path_, str]] = []
    for index, dep in enumerate(component.depends_on):
        if dep not in config.components:
            problems.append(((*base, "depends_on", index), f"unknown component {dep!r}"))
    known = _known_strategies(component)
    for index, strategy in enumerate(component.chain):
        if strategy not in known:
            problems.append(
                ((*base, "chain", index), _unknown_strategy(strategy, component.kind, known))
            )
    for failure, chain in component.on_failure.items():
        for index, strategy in enumerate(chain):
            if strategy not in known:
                problems.append(
                    (
                        (*base, "on_failure", failure, index),
                        _unknown_strategy(strategy, component.kind, known),
                    )
                )
    for strategy in component.strategies:
        if strategy not in known:
            problems.append(
                (
                    (*base, "strategies", strategy),
                    _unknown_strategy(strategy, component.kind, known),
                )
            )
    problems += [
        ((*base, *path), message)
        for path, message in _inline_secrets(component.settings, ("settings",))
    ]
    for strategy, spec in component.strategies.items():
        params_path: Path_ = ("strategies", strategy, "params")
        problems += [
            ((*base, *path), message) for path, message in _inline_secrets(spec.params, params_path)
        ]
    problems += _handler_checks(base, component)
    return problems


def _known_strategies(component: ComponentConfig) -> tuple[str, ...]:
    declared = KINDS[component.kind].strategies
    return tuple(component.strategies) if declared is None else declared


def _unknown_strategy(strategy: str, kind: str, known: tuple[str, ...]) -> str:
    listing = ", ".join(known) if known else "none declared under 'strategies'"
    return f"unknown strategy {strategy!r} for kind {kind} (known: {listing})"


def _inline_secrets(values: Mapping[str, Any], prefix: Path_) -> list[tuple[Path_, str]]:
    problems: list[tuple[Path_, str]] = []
    for key, value in values.items():
        path = (*prefix, key)
        if isinstance(value, Mapping):
            problems += _inline_secrets(value, path)
        elif SECRET_KEY_PATTERN.search(str(key)) and value not in (None, ""):
            problems.append(
                (path, f"secret written inline; name an environment variable with '{key}_env'")
            )
        elif isinstance(value, str) and URL_PASSWORD_PATTERN.match(value):
            problems.append((path, "URL carries a password; use a '*password_env' setting instead"))
    return problems


def _handler_checks(base: Path_, component: ComponentConfig) -> list[tuple[Path_, str]]:
    try:
        validate = config_validator(component.kind)
    except HandlerUnavailable:
        return []  # reported by `status` and `test`, never a config error
    params = {name: spec.params for name, spec in component.strategies.items()}
    return [
        ((*base, *yamlpos.parse_path(error.key)), error.message)
        for error in validate(component.settings, params)
    ]


def _cycle_checks(config: Config) -> list[tuple[Path_, str]]:
    from recovery_cli.graph import find_cycle

    graph = {
        name: [d for d in c.depends_on if d in config.components]
        for name, c in config.components.items()
    }
    cycle = find_cycle(graph)
    if not cycle:
        return []
    return [(("components", cycle[0], "depends_on"), "dependency cycle: " + " -> ".join(cycle))]


def secret_values(config: Config, environ: Mapping[str, str]) -> list[str]:
    """Values of every environment variable the config names through a ``*_env`` key:
    these are redacted from everything the tool writes or prints."""
    names: list[str] = []
    for component in config.components.values():
        names += _env_names(component.settings)
        for spec in component.strategies.values():
            names += _env_names(spec.params)
    return sorted(
        {environ[n] for n in names if environ.get(n) and len(environ[n]) >= 3},
        key=len,
        reverse=True,
    )


def _env_names(values: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    for key, value in values.items():
        if isinstance(value, Mapping):
            names += _env_names(value)
        elif str(key).endswith("_env") and isinstance(value, str):
            names.append(value)
    return names


def default_state_dir(environ: Mapping[str, str]) -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/recovery-cli")
    xdg = environ.get("XDG_STATE_HOME") or str(
        Path(environ.get("HOME", "~")).expanduser() / ".local/state"
    )
    return Path(xdg) / "recovery-cli"
