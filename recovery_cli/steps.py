"""One strategy step: retried with exponential backoff and jitter, inside its timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from recovery_cli.config import RetryPolicy
from recovery_cli.handler_calls import Crashed, call_with_timeout, strategy_result_from
from recovery_cli.handlers.base import StrategyContext, StrategyResult

if TYPE_CHECKING:
    import tenacity


@dataclass(frozen=True)
class StepRun:
    result: StrategyResult
    tries: int
    duration: float


def run_step(
    strategy: Callable[[StrategyContext], StrategyResult],
    make_context: Callable[[float], StrategyContext],
    retry: RetryPolicy,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    retry_errors: bool = True,
) -> StepRun:
    """Call ``strategy`` until it succeeds, fails for good, or ``timeout`` is spent.

    Retried: a result marked ``retryable``, and an exception unless ``retry_errors`` is off
    (a destructive strategy may have acted before it raised). Every call gets a context
    whose deadline is the step's, so a strategy can bound its own waits."""
    import tenacity

    started = time.monotonic()
    deadline = started + timeout
    tries = 0

    def attempt() -> StrategyResult:
        nonlocal tries
        tries += 1
        remaining = max(0.0, deadline - time.monotonic())
        outcome = call_with_timeout(lambda: strategy(make_context(deadline)), remaining)
        result = strategy_result_from(outcome)
        if isinstance(outcome, Crashed) and not retry_errors:
            return replace(result, retryable=False)
        return result

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(retry.attempts) | tenacity.stop_after_delay(timeout),
        wait=_wait(retry),
        retry=tenacity.retry_if_result(lambda r: not r.ok and r.retryable),
        sleep=lambda seconds: sleep(min(seconds, max(0.0, deadline - time.monotonic()))),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        reraise=False,
    )
    result: StrategyResult = retrying(attempt)
    return StepRun(result, tries, time.monotonic() - started)


def _wait(retry: RetryPolicy) -> tenacity.wait.wait_base:
    import tenacity

    if retry.jitter:
        return tenacity.wait_exponential_jitter(
            initial=retry.initial_delay,
            max=retry.max_delay,
            exp_base=retry.multiplier,
            jitter=retry.initial_delay,
        )
    return tenacity.wait_exponential(
        multiplier=retry.initial_delay, exp_base=retry.multiplier, max=retry.max_delay
    )
