"""``kind: command``: any service, probed and repaired by argv commands.

The probe follows the Nagios plugin convention: exit 0 healthy, 1 degraded (WARNING),
2 down (CRITICAL), anything else down with ``probe_unknown``; the first line of output is
the detail. Strategies are whatever the config declares, each ``params.command`` (argv).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from functools import partial
from typing import Any, ClassVar

from recovery_cli.handlers.base import (
    BaseHandler,
    Check,
    Health,
    ProbeResult,
    SettingsError,
    Strategy,
    StrategyContext,
    StrategyResult,
    number_errors,
)
from recovery_cli.handlers.util import CommandOutcome, run_command

NAGIOS_HEALTH = {0: Health.HEALTHY, 1: Health.DEGRADED, 2: Health.DOWN}
MAX_TIMEOUT_SECONDS = 3600  # as for every step and probe timeout in the config


class CommandHandler(BaseHandler):
    kind: ClassVar[str] = "command"

    @classmethod
    def validate_config(
        cls, settings: Mapping[str, Any], strategy_params: Mapping[str, Mapping[str, Any]]
    ) -> list[SettingsError]:
        errors = []
        if not _is_argv(settings.get("probe")):
            errors.append(
                SettingsError("settings.probe", "must be a non-empty argv list of strings")
            )
        for key in sorted(set(settings) - {"probe", "probe_timeout_seconds"}):
            if not key.endswith("_env"):  # *_env: secrets the commands read; redacted everywhere
                errors.append(SettingsError(f"settings.{key}", "unknown key"))
        errors += _timeout_errors("settings.probe_timeout_seconds", settings)
        for name, params in strategy_params.items():
            if not _is_argv(params.get("command")):
                errors.append(
                    SettingsError(
                        f"strategies.{name}.params.command", "must be a non-empty argv list"
                    )
                )
            errors += _timeout_errors(f"strategies.{name}.params.timeout_seconds", params)
        return errors

    def probe(self) -> ProbeResult:
        argv = self.context.settings["probe"]
        timeout = float(
            self.context.settings.get("probe_timeout_seconds", self.context.probe_timeout)
        )
        outcome = run_command(argv, timeout)
        if outcome.timed_out:
            return ProbeResult.down("probe_timeout", f"probe did not finish within {timeout:g}s")
        if outcome.missing:
            return ProbeResult.down("probe_unknown", outcome.output)
        health = NAGIOS_HEALTH.get(outcome.returncode) if outcome.returncode is not None else None
        if health is None:
            return ProbeResult.down(
                "probe_unknown", f"probe exited {outcome.returncode}: {outcome.first_line}"
            )
        if health is Health.HEALTHY:
            return ProbeResult.ok(outcome.first_line)
        failure = "probe_warning" if health is Health.DEGRADED else "probe_critical"
        return ProbeResult(health, failure, outcome.first_line)

    def strategies(self) -> Mapping[str, Strategy]:
        return {name: partial(self._run, name) for name in self.context.strategy_params}

    def _run(self, name: str, ctx: StrategyContext) -> StrategyResult:
        argv = list(ctx.params["command"])
        if ctx.dry_run:
            return StrategyResult.success(f"would run: {' '.join(argv)}")
        timeout = min(
            float(ctx.params.get("timeout_seconds", ctx.timeout)), ctx.remaining() or ctx.timeout
        )
        return _result(argv, run_command(argv, timeout), timeout)

    def preflight(self, strategy: str) -> list[Check]:
        checks = [_executable_check("probe", self.context.settings["probe"])]
        params = self.context.params_for(strategy)
        if "command" in params:
            checks.append(_executable_check(f"{strategy} command", params["command"]))
        return checks


def _result(argv: list[str], outcome: CommandOutcome, timeout: float) -> StrategyResult:
    if outcome.timed_out:
        return StrategyResult.failure(
            "command_timeout", f"{argv[0]} did not finish within {timeout:g}s"
        )
    if outcome.missing:
        return StrategyResult.failure("command_failed", outcome.output)
    if outcome.returncode != 0:
        return StrategyResult.failure(
            "command_failed", f"exit {outcome.returncode}: {outcome.output}"
        )
    return StrategyResult.success(outcome.output or f"{argv[0]} exited 0")


def _executable_check(label: str, argv: list[str]) -> Check:
    found = shutil.which(argv[0])
    if found is None:
        return Check(f"{label}: executable", False, f"{argv[0]} not found or not executable")
    return Check(f"{label}: executable", True, found)


def _timeout_errors(key: str, values: Mapping[str, Any]) -> list[SettingsError]:
    name = key.rpartition(".")[2]
    if name not in values:  # null is no default: float(None) would fail at run time
        return []
    return number_errors(key, values[name], 0, MAX_TIMEOUT_SECONDS, above=True)


def _is_argv(value: object) -> bool:
    """A non-empty list of non-empty strings that exec accepts (no NUL inside)."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, str) and v and "\x00" not in v for v in value)
    )
