"""Load and validate ``recovery_config.yml``.

Every problem is reported as ``file:line: key.path: message``; all of them at once, so an
operator fixes a broken config in one pass.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from recovery_cli import yaml_lines
from recovery_cli.errors import ConfigError, ConfigProblem
from recovery_cli.lifecycle import Thresholds
from recovery_cli.registry import (
    HandlerUnavailable,
    config_validator,
    config_warnings,
    kind_spec,
    known_kinds,
)

# The bounds of every number in the config: each one validates, so none may crash later
# (``time.sleep(1e20)``, a timestamp past year 9999) or wait forever (``.inf``).
DAY = 86400
MAX_COOLDOWN_SECONDS = 7 * DAY
MAX_ATTEMPTS_PER_HOUR = 1000
MAX_TIMEOUT_SECONDS = 3600  # a step, probe, service action or hook
MAX_ALERT_TIMEOUT_SECONDS = 60
# each ping: `recover` makes two a run, and cron starts one a minute
MAX_HEARTBEAT_TIMEOUT_SECONDS = 10
MAX_LOCK_WAIT_SECONDS = 300
MAX_APPROVAL_TTL_SECONDS = 7 * DAY
MAX_RETENTION_DAYS = 3650
MAX_RETRY_DELAY_SECONDS = 3600
MAX_RETRY_MULTIPLIER = 10
MAX_RETRY_ATTEMPTS = 20
MAX_COMPONENTS = 1000
MAX_ATTEMPTS_PER_DAY = 24 * MAX_ATTEMPTS_PER_HOUR
MAX_PROBE_COUNT = 100  # failures_before_action, successes_before_healthy, flap_max
MAX_REPEAT_SECONDS = DAY
MAX_ADAPTIVE_MIN_RUNS = 1000
SEVERITIES = {"critical": "critical", "high": "critical", "medium": "warning", "low": "info"}
UNHEALTHY_PERCENT = re.compile(r"^(\d{1,3}(\.\d+)?)%$")
MAX_CONFIG_BYTES = 1024 * 1024

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
# STATE/<component>/ sits beside the state dir's own files and dirs: never one of them
RESERVED_NAMES = frozenset(
    {"lock", "locks", "audit", "processes", "keys", "tmp", "torn", "state", "errors", "components"}
)
SECRET_KEY_PATTERN = re.compile(
    r"(password|passwd|secret|token|api_key|apikey|credential)s?$", re.I
)
# scheme://userinfo@ anywhere in a string (an argv item such as --url=https://u:pw@host too)
# (the look-behind starts a scheme only at a word start: linear even on a 1 MiB string)
URL_USERINFO_PATTERN = re.compile(r"(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*://[^/?#\s@]*@", re.I)
SECRET_QUERY_PATTERN = re.compile(
    r"[?&;](password|passwd|pwd|token|access_token|secret|api_key|apikey|auth)=", re.I
)
USE_ENV = "put it in an environment variable named by a '*_env' setting"
URL_CREDENTIALS = (
    "URL carries credentials; put them in an environment variable named by a '*_env' setting"
)
DEFAULT_CONFIG_PATHS = (Path("recovery_config.yml"), Path("/etc/recovery-cli/recovery_config.yml"))


def _no_pydantic_plugins(environ: Mapping[str, str]) -> None:
    """Before the first validator of a process, pydantic looks for plugins: it reads the
    entry points of every installed distribution (~15 ms a run). The tool uses none, so it
    says so first, unless PYDANTIC_DISABLE_PLUGINS is set (then that decides). Nothing
    else changes: the environment children inherit stays as it was."""
    from pydantic.plugin import _loader

    if "PYDANTIC_DISABLE_PLUGINS" not in environ and _loader._plugins is None:
        _loader._plugins = {}


_no_pydantic_plugins(os.environ)


def _no_bool(value: object) -> object:
    if isinstance(value, bool):  # YAML's true is not the number 1 here
        raise ValueError("must be a number, not true/false")
    return value


def _no_nul(text: str) -> str:
    if "\x00" in text:  # no argv item or path can hold one: exec and open refuse it
        raise ValueError("must not contain a NUL character")
    return text


def _not_reserved(name: str) -> str:
    if name in RESERVED_NAMES:
        raise ValueError("reserved for the state dir's own files; choose another name")
    return name


def http_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be posted or pinged (never quoting it), or None: http or https, a
    host, nothing a request line cannot carry."""
    from urllib.parse import urlsplit

    if any(c.isspace() or not c.isprintable() for c in url):
        return "must be a URL without spaces or control characters"
    if not url.isascii():  # a request line carries ASCII only
        return "must be ASCII: percent-encode other characters (punycode for a host)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError:
        return "must be an http:// or https:// URL"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.fragment:
        return "must not have a #fragment"
    return None


def _http_url(url: str) -> str:
    problem = http_url_problem(url)
    if problem:
        raise ValueError(problem)
    return url


ComponentName = Annotated[str, Field(pattern=NAME_PATTERN)]
ComponentKey = Annotated[ComponentName, AfterValidator(_not_reserved)]
Text = Annotated[str, Field(min_length=1), AfterValidator(_no_nul)]
Argv = Annotated[list[Text], Field(min_length=1)]
Whole = Annotated[int, BeforeValidator(_no_bool)]
Number = Annotated[float, BeforeValidator(_no_bool), Field(allow_inf_nan=False)]
Timeout = Annotated[Number, Field(gt=0, le=MAX_TIMEOUT_SECONDS)]
Delay = Annotated[Number, Field(ge=0, le=MAX_RETRY_DELAY_SECONDS)]
Cooldown = Annotated[Whole, Field(ge=0, le=MAX_COOLDOWN_SECONDS)]
HourlyCap = Annotated[Whole, Field(ge=1, le=MAX_ATTEMPTS_PER_HOUR)]
DailyCap = Annotated[Whole, Field(ge=1, le=MAX_ATTEMPTS_PER_DAY)]
ProbeCount = Annotated[Whole, Field(ge=1, le=MAX_PROBE_COUNT)]
FlapMax = Annotated[Whole, Field(ge=0, le=MAX_PROBE_COUNT)]
Window = Annotated[Number, Field(gt=0, le=DAY)]
Grace = Annotated[Number, Field(ge=0, le=MAX_TIMEOUT_SECONDS)]


class Strict(BaseModel):
    """Frozen, no unknown keys. Built when first used (``defer_build``): a validator of its
    own only for a model validated on its own; ``Config``'s validator holds the nested ones,
    and the defaults below are built without one (``model_construct``: their values as
    declared)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class RetryPolicy(Strict):
    attempts: Whole = Field(3, ge=1, le=MAX_RETRY_ATTEMPTS)
    initial_delay: Delay = 1.0
    max_delay: Delay = 30.0
    multiplier: Number = Field(2.0, ge=1, le=MAX_RETRY_MULTIPLIER)
    jitter: bool = True


class AdaptiveSettings(Strict):
    """How ``chain_order: adaptive`` reads the trail: the runs a strategy needs before it is
    ranked, and how many days of step records count."""

    min_runs: Whole = Field(5, ge=1, le=MAX_ADAPTIVE_MIN_RUNS)
    window_days: Whole = Field(30, ge=1, le=MAX_RETENTION_DAYS)


class AdaptiveOverride(Strict):
    """A component's own ``adaptive`` values; a key left out is the defaults'."""

    min_runs: Annotated[Whole, Field(ge=1, le=MAX_ADAPTIVE_MIN_RUNS)] | None = None
    window_days: Annotated[Whole, Field(ge=1, le=MAX_RETENTION_DAYS)] | None = None


class Defaults(Strict):
    cooldown_seconds: Cooldown = 300
    max_attempts_per_hour: HourlyCap = 3
    step_timeout_seconds: Timeout = 60.0
    probe_timeout_seconds: Timeout = 10.0
    probe_interval_seconds: Timeout = 10.0  # how often `watch` probes each component
    approval_ttl_seconds: Whole = Field(3600, ge=1, le=MAX_APPROVAL_TTL_SECONDS)
    lock_wait_seconds: Number = Field(10.0, ge=0, le=MAX_LOCK_WAIT_SECONDS)
    retry: RetryPolicy = RetryPolicy.model_construct()
    max_attempts_per_day: DailyCap | None = None
    failures_before_action: ProbeCount = 1
    successes_before_healthy: ProbeCount = 1
    grace_seconds: Grace = 0.0
    flap_max: FlapMax = 0
    flap_window_seconds: Window = 600.0
    # more components down at once than this (a count, or "N%" of the components): stop
    max_unhealthy: Whole | str | None = None
    adaptive: AdaptiveSettings = AdaptiveSettings.model_construct()

    @field_validator("max_unhealthy")
    @classmethod
    def _count_or_percent(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and not 0 <= value <= MAX_COMPONENTS:
            raise ValueError(f"must be a count from 0 to {MAX_COMPONENTS} or a percentage")
        if isinstance(value, str):
            match = UNHEALTHY_PERCENT.match(value.strip())
            if not match or float(match.group(1)) > 100:
                raise ValueError("must be a count or a percentage such as '50%'")
        return value


class AuditConfig(Strict):
    retention_days: Whole = Field(30, ge=1, le=MAX_RETENTION_DAYS)
    # a 0600 file of random bytes, kept outside the state dir: the chain becomes HMAC-SHA256
    hmac_key_file: Annotated[str, Field(min_length=1)] | None = None


class StrategyConfig(Strict):
    approval: Literal["auto", "required"] = "auto"
    params: dict[str, Any] = Field(default_factory=dict)
    timeout_seconds: Timeout | None = None
    retry: RetryPolicy | None = None


# a strategy the component does not configure: the defaults
NO_STRATEGY_SETTINGS = StrategyConfig.model_construct()


class ServiceConfig(Strict):
    method: Literal["command", "systemd", "docker", "none"] = "none"
    unit: str | None = None
    container: str | None = None
    base_url: str | None = None
    restart: Argv | None = None
    start: Argv | None = None
    stop: Argv | None = None
    timeout_seconds: Timeout = 30.0
    ready_timeout_seconds: Timeout = 60.0
    # the main process's pidfile: `watch` reacts to its exit at once (a pidfd)
    pidfile: Text | None = None

    @field_validator("pidfile")
    @classmethod
    def _absolute_pidfile(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must be an absolute path")
        return value

    @model_validator(mode="after")
    def _method_fields(self) -> ServiceConfig:
        if self.method == "systemd" and not self.unit:
            raise ValueError("method systemd needs 'unit'")
        if self.method == "docker" and not self.container:
            raise ValueError("method docker needs 'container'")
        if self.method == "command" and not (self.restart or self.start):
            raise ValueError("method command needs 'restart' or 'start' ('stop' is optional)")
        return self


class ComponentConfig(Strict):
    # with the postgres backend: ``fleet`` shares caps, cooldowns, approvals and lifecycle
    # across every host that recovers it (one shared Redis); ``host`` keeps them per host
    scope: Literal["host", "fleet"] = "host"
    kind: str
    priority: Literal["critical", "high", "medium", "low"] = "medium"
    mode: Literal["auto", "approve", "shadow"] = "auto"
    depends_on: list[ComponentName] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)
    service: ServiceConfig | None = None
    chain: list[str] = Field(min_length=1)
    on_failure: dict[str, Annotated[list[str], Field(min_length=1)]] = Field(default_factory=dict)
    strategies: dict[str, StrategyConfig] = Field(default_factory=dict)
    # adaptive: the automatic steps ranked by their record for the failure at hand
    chain_order: Literal["configured", "adaptive"] = "configured"
    adaptive: AdaptiveOverride | None = None
    cooldown_seconds: Cooldown | None = None
    max_attempts_per_hour: HourlyCap | None = None
    step_timeout_seconds: Timeout | None = None
    probe_timeout_seconds: Timeout | None = None
    probe_interval_seconds: Timeout | None = None
    max_attempts_per_day: DailyCap | None = None
    failures_before_action: ProbeCount | None = None
    successes_before_healthy: ProbeCount | None = None
    grace_seconds: Grace | None = None
    flap_max: FlapMax | None = None
    flap_window_seconds: Window | None = None

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind_spec(kind) is None:
            raise ValueError(f"unknown kind {kind!r} (known: {', '.join(known_kinds())})")
        return kind


class Hook(Strict):
    command: Argv
    timeout_seconds: Timeout = 30.0


class DegradedMode(Strict):
    component: ComponentName
    capabilities: dict[str, str] = Field(default_factory=dict)
    # entered only when the exhausted chain's failure type is one of these; None: the
    # kind's defaults (the failures users feel), every failure type when it has none
    failure_types: list[Text] | None = None
    on_enter: Hook | None = None
    on_exit: Hook | None = None


class Alerting(Strict):
    alertmanager_url: Annotated[str, AfterValidator(_http_url)] | None = None
    webhook_url: Annotated[str, AfterValidator(_http_url)] | None = None
    timeout_seconds: Number = Field(3.0, gt=0, le=MAX_ALERT_TIMEOUT_SECONDS)
    repeat_seconds: Number = Field(300.0, gt=0, le=MAX_REPEAT_SECONDS)
    # how often runs come (cron: 60): an alert's endsAt is set beyond the next re-send
    run_interval_seconds: Number = Field(60.0, gt=0, le=MAX_REPEAT_SECONDS)
    # priority -> the severity label receivers route on
    severity: dict[Literal["critical", "high", "medium", "low"], Text] = Field(default_factory=dict)
    # the runner's own Healthchecks-style pings (``heartbeat.py``): the URL, or the variable
    # that holds it when the URL is a secret (userinfo, a ping key)
    heartbeat_url: Annotated[str, AfterValidator(_http_url)] | None = None
    heartbeat_url_env: Annotated[str, Field(pattern=ENV_NAME_PATTERN)] | None = None
    heartbeat_timeout_seconds: Number = Field(3.0, gt=0, le=MAX_HEARTBEAT_TIMEOUT_SECONDS)
    # `watch` pings at most once per this many seconds, however fast it loops
    heartbeat_interval_seconds: Number = Field(60.0, ge=1, le=DAY)

    @model_validator(mode="after")
    def _one_heartbeat(self) -> Alerting:
        if self.heartbeat_url and self.heartbeat_url_env:
            raise ValueError("heartbeat_url and heartbeat_url_env exclude each other: set one")
        return self


MAX_API_RATE = 10_000


class ApiToken(Strict):
    name: ComponentName  # recorded as the operator of what the token does
    env: Annotated[str, Field(pattern=ENV_NAME_PATTERN)]  # the variable that holds the token
    role: Literal["read", "recover", "admin"] = "read"


class ApiRateLimit(Strict):
    """Mutating calls each admin token may make per ``per_seconds`` (429 past it)."""

    requests: Whole = Field(10, ge=1, le=MAX_API_RATE)
    per_seconds: Number = Field(60.0, gt=0, le=DAY)


class AlertmanagerReceiver(Strict):
    component_label: Text = "component"  # the label that names the component to recover
    dedup_seconds: Number = Field(300.0, ge=0, le=DAY)  # one recovery per burst


class ApiConfig(Strict):
    tokens: list[ApiToken] = Field(default_factory=list, max_length=100)
    rate_limit: ApiRateLimit = ApiRateLimit.model_construct()
    ssl_certfile: Text | None = None
    ssl_keyfile: Text | None = None
    alertmanager: AlertmanagerReceiver = AlertmanagerReceiver.model_construct()

    @model_validator(mode="after")
    def _consistent(self) -> ApiConfig:
        for key in ("name", "env"):
            values = [getattr(t, key) for t in self.tokens]
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"token {key}s must be unique: {', '.join(repeated)} repeated")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together")
        return self


class StateBackend(Strict):
    """Where policy state and the audit trail live: the state dir (``file``), or PostgreSQL
    shared by a fleet (``postgres``, its DSN in the environment variable ``dsn_env``)."""

    backend: Literal["file", "postgres"] = "file"
    dsn_env: Annotated[str, Field(pattern=ENV_NAME_PATTERN)] | None = None
    connect_timeout_seconds: Number = Field(3.0, gt=0, le=60)
    lock_timeout_seconds: Number = Field(10.0, gt=0, le=MAX_LOCK_WAIT_SECONDS)
    statement_timeout_seconds: Number = Field(10.0, gt=0, le=MAX_TIMEOUT_SECONDS)
    idle_in_transaction_timeout_seconds: Number = Field(2.0, gt=0, le=MAX_TIMEOUT_SECONDS)
    keepalive_idle_seconds: Whole = Field(10, ge=1, le=7200)
    # with postgres: also append every record to the state dir's JSONL trail (its own chain)
    local_audit: bool = False

    @model_validator(mode="after")
    def _dsn_named(self) -> StateBackend:
        if self.backend == "postgres" and not self.dsn_env:
            raise ValueError("the postgres backend needs dsn_env: the variable holding its DSN")
        return self


class Fleet(Strict):
    # how many hosts may be acting on fleet components at one time (none: no limit)
    max_concurrent_actions: Annotated[Whole, Field(ge=1, le=MAX_COMPONENTS)] | None = None


class Config(Strict):
    version: Literal[1]
    state_dir: str | None = None
    # the host name records and host-scoped state use (else $RECOVERY_HOST, else the machine's)
    host: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")] | None = None
    state: StateBackend = StateBackend.model_construct()
    fleet: Fleet = Fleet.model_construct()
    defaults: Defaults = Defaults.model_construct()
    audit: AuditConfig = AuditConfig.model_construct()
    components: dict[ComponentKey, ComponentConfig] = Field(min_length=1, max_length=MAX_COMPONENTS)
    degraded_modes: dict[ComponentName, DegradedMode] = Field(default_factory=dict)
    alerting: Alerting = Alerting.model_construct()
    api: ApiConfig = ApiConfig.model_construct()
    # what the kinds say cannot work as meant: ``file:line: key: message`` lines
    _warnings: list[str] = PrivateAttr(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return list(self._warnings)

    @field_validator("state_dir")
    @classmethod
    def _state_dir_path(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must be a directory path (leave it out for the default)")
        return value if value is None else _no_nul(value)

    # Derived per-component values, so nobody re-implements the default fallback.
    def cooldown(self, name: str) -> int:
        value = self.components[name].cooldown_seconds
        return self.defaults.cooldown_seconds if value is None else value

    def hourly_cap(self, name: str) -> int:
        value = self.components[name].max_attempts_per_hour
        return self.defaults.max_attempts_per_hour if value is None else value

    def daily_cap(self, name: str) -> int | None:
        value = self.components[name].max_attempts_per_day
        return self.defaults.max_attempts_per_day if value is None else value

    def thresholds(self, name: str) -> Thresholds:
        component, defaults = self.components[name], self.defaults

        def pick(key: str) -> Any:
            own = getattr(component, key)
            return getattr(defaults, key) if own is None else own

        return Thresholds(
            failures_before_action=pick("failures_before_action"),
            successes_before_healthy=pick("successes_before_healthy"),
            grace_seconds=pick("grace_seconds"),
            flap_max=pick("flap_max"),
            flap_window_seconds=pick("flap_window_seconds"),
        )

    def dependency_graph(self) -> dict[str, list[str]]:
        """Each component -> the components it depends on."""
        return {name: list(c.depends_on) for name, c in self.components.items()}

    def severity(self, name: str) -> str:
        priority = self.components[name].priority
        return self.alerting.severity.get(priority) or SEVERITIES[priority]

    def step_timeout(self, name: str, strategy: str) -> float:
        own = self.strategy(name, strategy).timeout_seconds
        if own is not None:
            return own
        return self.components[name].step_timeout_seconds or self.defaults.step_timeout_seconds

    def probe_interval(self, name: str) -> float:
        own = self.components[name].probe_interval_seconds
        return own or self.defaults.probe_interval_seconds

    def probe_timeout(self, name: str) -> float:
        return self.components[name].probe_timeout_seconds or self.defaults.probe_timeout_seconds

    def strategy(self, name: str, strategy: str) -> StrategyConfig:
        return self.components[name].strategies.get(strategy, NO_STRATEGY_SETTINGS)

    def retry(self, name: str, strategy: str) -> RetryPolicy:
        return self.strategy(name, strategy).retry or self.defaults.retry

    def needs_approval(self, name: str, strategy: str) -> bool:
        if self.components[name].mode == "approve":
            return True
        return self.strategy(name, strategy).approval == "required"

    def adaptive(self, name: str) -> AdaptiveSettings:
        """The component's adaptive settings, each key its own or the defaults'."""
        own, base = self.components[name].adaptive, self.defaults.adaptive
        if own is None:
            return base
        return AdaptiveSettings.model_construct(
            min_runs=base.min_runs if own.min_runs is None else own.min_runs,
            window_days=base.window_days if own.window_days is None else own.window_days,
        )

    def chain_for(self, name: str, failure_type: str | None) -> list[str]:
        """The steps for this failure, without those the kind says cannot fix it."""
        component = self.components[name]
        if failure_type and failure_type in component.on_failure:
            chain = list(component.on_failure[failure_type])
        else:
            chain = list(component.chain)
        spec = kind_spec(component.kind)
        if spec is None or not failure_type:
            return chain
        return [s for s in chain if failure_type not in spec.cannot_help.get(s, ())]

    def destructive(self, name: str, strategy: str) -> bool:
        """Whether the kind says the strategy changes or discards data."""
        spec = kind_spec(self.components[name].kind)
        return spec is not None and strategy in spec.destructive

    def modes_for(self, name: str, failure_type: str | None = None) -> list[str]:
        """The component's degraded modes; with ``failure_type``, only those entered for it."""
        return [
            mode
            for mode, spec in self.degraded_modes.items()
            if spec.component == name and self._enters(mode, failure_type)
        ]

    def _enters(self, mode: str, failure_type: str | None) -> bool:
        types = self.mode_failure_types(mode)
        return failure_type is None or not types or failure_type in types

    def mode_failure_types(self, mode: str) -> tuple[str, ...]:
        """The failure types that enter ``mode``; empty: any failure."""
        spec = self.degraded_modes[mode]
        if spec.failure_types is not None:
            return tuple(spec.failure_types)
        kind = kind_spec(self.components[spec.component].kind)
        return kind.degraded_failure_types if kind is not None else ()


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


def declared_components(explicit: Path | None, environ: Mapping[str, str]) -> list[str]:
    """The component names the config declares, for shell completion: the file is read and
    parsed, not validated (a config with a problem still names its components); none when
    there is no config that can be read."""
    try:
        path = resolve_config_path(explicit, environ)
        data = yaml_lines.load(_read_config(path), str(path)).data
    except ConfigError:
        return []
    components = data.get("components") if isinstance(data, dict) else None
    if not isinstance(components, dict):
        return []
    return [name for name in components if isinstance(name, str)]


Path_ = tuple[str | int, ...]


def load_config(path: Path) -> Config:
    return parse_config(_read_config(path), str(path))


def _read_config(path: Path) -> str:
    """The config's text: a regular file (never /dev/zero or a FIFO that blocks), read up to
    ``MAX_CONFIG_BYTES`` and not one byte further."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise _unreadable(path, "cannot read config: not a regular file")
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise _unreadable(path, f"cannot read config: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise _unreadable(path, f"config is larger than {MAX_CONFIG_BYTES // 1024} KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _unreadable(path, "config is not UTF-8 text") from None


def _unreadable(path: Path, message: str) -> ConfigError:
    return ConfigError([ConfigProblem(str(path), 0, "", message)])


def parse_config(text: str, filename: str) -> Config:
    document = yaml_lines.load(text, filename)
    if not isinstance(document.data, dict):
        raise ConfigError([ConfigProblem(filename, 1, "", "the config must be a mapping")])
    secrets = _problems(document, _inline_secrets(document.data))
    if secrets:  # alone: another check's message could quote the very value
        raise ConfigError(secrets)
    try:
        config = Config.model_validate(document.data)
    except ValidationError as exc:
        raise ConfigError(_pydantic_problems(exc, document)) from None
    problems = _problems(document, _cross_checks(config))
    if problems:
        raise ConfigError(problems)
    warnings = _handler_warnings(config) + _backend_warnings(config) + _adaptive_warnings(config)
    config._warnings = [str(w) for w in _problems(document, warnings)]
    return config


def _problems(document: yaml_lines.Document, found: list[tuple[Path_, str]]) -> list[ConfigProblem]:
    return [
        ConfigProblem(
            document.filename,
            document.line_of(path),
            yaml_lines.format_path(path),
            message,
            document.column_of(path),
        )
        for path, message in found
    ]


def _pydantic_problems(exc: ValidationError, document: yaml_lines.Document) -> list[ConfigProblem]:
    found: list[tuple[Path_, str]] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        if loc and loc[-1] == "[key]":  # a bad mapping key: name the key itself
            loc, message = loc[:-1], f"bad name: {message}"
        found.append((loc, message))
    return _problems(document, found)


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
        elif dep in component.depends_on[:index]:
            problems.append(((*base, "depends_on", index), f"{dep!r} is listed twice"))
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
    problems += _handler_checks(base, component)
    return problems


def _known_strategies(component: ComponentConfig) -> tuple[str, ...]:
    spec = kind_spec(component.kind)
    declared = spec.strategies if spec is not None else ()
    return tuple(component.strategies) if declared is None else declared


def _unknown_strategy(strategy: str, kind: str, known: tuple[str, ...]) -> str:
    listing = ", ".join(known) if known else "none declared under 'strategies'"
    return f"unknown strategy {strategy!r} for kind {kind} (known: {listing})"


def _inline_secrets(document: Any) -> list[tuple[Path_, str]]:
    """Every string anywhere in the raw document, keys included, that carries a credential,
    and every secret-named key given a value. One iterative walk; a value shared through a
    YAML alias is looked at once."""
    problems: list[tuple[Path_, str]] = []
    seen: set[int] = set()
    stack: list[tuple[Path_, Any]] = [((), document)]
    while stack:
        path, value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, str):
            problems += [(path, message) for message in _secret_in_text(value)]
        elif isinstance(value, Mapping):
            problems += _secret_keys(path, value)
            stack += reversed([((*path, str(k)), v) for k, v in value.items()])
        elif isinstance(value, list | tuple | set | frozenset):
            stack += reversed([((*path, i), v) for i, v in enumerate(value)])
    return problems


def _secret_in_text(text: str) -> list[str]:
    """Why ``text`` holds a credential (never the credential itself), if it does; also
    once percent-decoded (``api%5Fkey=`` is ``api_key=``)."""
    if "%" in text:
        from urllib.parse import unquote

        decoded = unquote(text)
        if decoded != text and _secret_in_text(decoded):
            return _secret_in_text(decoded)
    if "@" in text and URL_USERINFO_PATTERN.search(text):
        return [URL_CREDENTIALS]
    query = SECRET_QUERY_PATTERN.search(text)
    if query:
        return [f"URL carries a secret query parameter '{query.group(1).lower()}='; {USE_ENV}"]
    return []


def _secret_keys(path: Path_, mapping: Mapping[Any, Any]) -> list[tuple[Path_, str]]:
    problems: list[tuple[Path_, str]] = []
    for key, value in mapping.items():
        if not isinstance(key, str):
            continue
        # reported at the mapping: the key's own path would print the credential
        problems += [(path, message) for message in _secret_in_text(key)]
        filled = isinstance(value, str | int | float) and not isinstance(value, bool)
        if filled and value != "" and SECRET_KEY_PATTERN.search(key):
            name = key if key.isprintable() else "*"
            problems.append(
                (
                    (*path, key),
                    f"secret written inline; name an environment variable with '{name}_env'",
                )
            )
    return problems


def _handler_checks(base: Path_, component: ComponentConfig) -> list[tuple[Path_, str]]:
    try:
        validate = config_validator(component.kind)
    except HandlerUnavailable:
        return []  # reported by `status` and `test`, never a config error
    params = {name: spec.params for name, spec in component.strategies.items()}
    return [
        ((*base, *yaml_lines.parse_path(error.key)), error.message)
        for error in validate(component.settings, params)
    ]


def _handler_warnings(config: Config) -> list[tuple[Path_, str]]:
    """What each kind says cannot work as meant (the config loads all the same)."""
    found: list[tuple[Path_, str]] = []
    for name, component in config.components.items():
        try:
            warn = config_warnings(component.kind)
        except HandlerUnavailable:
            continue
        params = {s: spec.params for s, spec in component.strategies.items()}
        found += [
            (("components", name, *yaml_lines.parse_path(w.key)), w.message)
            for w in warn(component.settings, params)
        ]
    return found


def _backend_warnings(config: Config) -> list[tuple[Path_, str]]:
    """Fleet settings mean nothing on the file backend: each host keeps its own state."""
    if config.state.backend != "file":
        return []
    found: list[tuple[Path_, str]] = [
        (
            ("components", name, "scope"),
            "scope: fleet shares nothing on the file backend (set state.backend: postgres)",
        )
        for name, component in config.components.items()
        if component.scope == "fleet"
    ]
    if config.fleet.max_concurrent_actions is not None:
        found.append((("fleet", "max_concurrent_actions"), "has no effect on the file backend"))
    return found


def _adaptive_warnings(config: Config) -> list[tuple[Path_, str]]:
    """``adaptive`` settings on a component whose chain runs in the configured order."""
    return [
        (("components", name, "adaptive"), "has no effect unless chain_order is adaptive")
        for name, component in config.components.items()
        if component.adaptive is not None and component.chain_order != "adaptive"
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
    names += [token.env for token in config.api.tokens]
    names += [config.state.dsn_env] if config.state.dsn_env else []
    names += [config.alerting.heartbeat_url_env] if config.alerting.heartbeat_url_env else []
    values = {environ[n] for n in names if environ.get(n) and len(environ[n]) >= 3}
    if config.state.dsn_env and environ.get(config.state.dsn_env):
        values |= dsn_passwords(environ[config.state.dsn_env])
    return sorted(values, key=len, reverse=True)


DSN_USERINFO = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#]*?:(.+)@[^@]*$", re.I | re.S)
DSN_KEYWORD = re.compile(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.I)


def dsn_passwords(dsn: str) -> set[str]:
    """The password a DSN holds, as written and decoded: a driver's error may quote either
    (a password with an unencoded ``@`` or ``%`` is quoted back in the error)."""
    from urllib.parse import unquote

    found: set[str] = set()
    match = DSN_USERINFO.match(dsn.strip())
    if match:
        found |= {match.group(1), unquote(match.group(1))}
        found |= {part for part in match.group(1).split("@") if len(part) >= 3}
    for value in DSN_KEYWORD.findall(dsn):
        found.add(value.strip("'"))
    return {value for value in found if len(value) >= 3}


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
