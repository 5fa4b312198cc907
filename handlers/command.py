"""``kind: command``: any service, probed and repaired by argv commands.

The probe follows the Nagios plugin convention: exit 0 healthy, 1 degraded (WARNING),
2 down (CRITICAL), anything else down with ``probe_unknown``; the first line of output is
the detail. Strategies are whatever the config declares, each ``params.command`` (argv).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from functools import partial

from recovery_cli.handlers.base import (
    BaseHandler,
    Check,
    ComponentContext,
    Health,
    KindSpec,
    ProbeResult,
    Strategy,
    StrategyContext,
    StrategyResult,
)
from recovery_cli.handlers.command_settings import CommandParams, CommandSettings
from recovery_cli.handlers.settings_models import params_key, parse, step_params
from recovery_cli.handlers.util import CommandOutcome, run_command

NAGIOS_HEALTH = {0: Health.HEALTHY, 1: Health.DEGRADED, 2: Health.DOWN}


class CommandHandler(BaseHandler):
    kind = "command"

    def __init__(self, context: ComponentContext) -> None:
        super().__init__(context)
        self.settings = CommandSettings.model_validate(context.settings)

    def probe(self) -> ProbeResult:
        argv = self.settings.probe
        own = self.settings.probe_timeout_seconds
        timeout = float(self.context.probe_timeout if own is None else own)
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
        params = step_params(CommandParams, name, ctx.params)
        if isinstance(params, StrategyResult):
            return params
        argv = list(params.command)
        if ctx.dry_run:
            return StrategyResult.success(f"would run: {' '.join(argv)}")
        timeout = min(params.timeout_seconds or ctx.timeout, ctx.remaining() or ctx.timeout)
        return _result(argv, run_command(argv, timeout), timeout)

    def preflight(self, strategy: str) -> list[Check]:
        checks = [_executable_check("probe", self.settings.probe)]
        params = parse(CommandParams, self.context.params_for(strategy), params_key(strategy))
        if not isinstance(params, list):
            checks.append(_executable_check(f"{strategy} command", params.command))
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


def _executable_check(label: str, argv: Sequence[str]) -> Check:
    found = shutil.which(argv[0])
    if found is None:
        return Check(f"{label}: executable", False, f"{argv[0]} not found or not executable")
    return Check(f"{label}: executable", True, found)


KIND = KindSpec(
    description="any service: probe and strategies are argv commands (Nagios plugin convention)",
    handler="recovery_cli.handlers.command:CommandHandler",
    settings="recovery_cli.handlers.command_settings:validate",
    strategies=None,
)
