"""Running a chain: steps with approvals, retries and timeouts, a re-probe after each, and
the attempt's end: success, failure (cooldown, degraded modes, alert) or a pending approval."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from recovery_cli import approvals
from recovery_cli.alerts import Outbox
from recovery_cli.exitcodes import ExitCode, Terminated, interrupt_exit_code
from recovery_cli.handlers.base import ProbeResult, StrategyContext, StrategyResult
from recovery_cli.policy import BlockReason, Outcome
from recovery_cli.reports import ComponentReport, StepReport
from recovery_cli.runs import RecoverRequest, RunParts
from recovery_cli.steps import run_step
from recovery_cli.store import Transaction


class ChainRunner(RunParts):
    outbox: Outbox

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outbox = Outbox()

    def run_chain(
        self,
        name: str,
        chain: Sequence[str],
        probe: ProbeResult,
        attempt_id: str,
        request: RecoverRequest,
        approved: str | None = None,
    ) -> ComponentReport:
        started = time.monotonic()
        steps: list[StepReport] = []
        failure_type = probe.failure_type
        for strategy in chain:
            if self._needs_a_human(name, strategy, approved) and not self._confirmed(
                name, strategy, failure_type, attempt_id, request
            ):
                return self._await_approval(
                    name, strategy, failure_type, attempt_id, request, steps, started
                )
            try:
                step, after = self._step(name, strategy, failure_type, attempt_id, request)
            except (KeyboardInterrupt, Terminated) as exc:
                self._interrupted(name, strategy, failure_type, attempt_id, request, started, exc)
                raise
            steps.append(step)
            if after.healthy:
                return self._succeeded(name, attempt_id, request, steps, started, after)
            failure_type = after.failure_type or failure_type
        return self._failed(name, attempt_id, request, steps, started, failure_type)

    def _needs_a_human(self, name: str, strategy: str, approved: str | None) -> bool:
        return strategy != approved and self.config.needs_approval(name, strategy)

    def _step(
        self,
        name: str,
        strategy: str,
        failure_type: str | None,
        attempt_id: str,
        request: RecoverRequest,
    ) -> tuple[StepReport, ProbeResult]:
        timeout = self.config.step_timeout(name, strategy)
        run = run_step(
            lambda ctx: self._strategy_fn(name, strategy)(ctx),
            lambda deadline: self._context(name, strategy, failure_type, timeout, False, deadline),
            self.config.retry(name, strategy),
            timeout,
            sleep=self.env.clock.sleep,
        )
        after = self.components.probe(name, fresh=True)
        result = run.result
        with self.store.transaction(self.wait) as tx:
            tx.record(
                "step",
                name,
                strategy=strategy,
                attempt_id=attempt_id,
                trigger=request.trigger,
                outcome=Outcome.SUCCESS if result.ok else Outcome.FAILED,
                failure_type=failure_type,
                error=result.failure_type,
                detail=result.detail,
                data=dict(result.data) or None,
                tries=run.tries,
                duration_s=round(run.duration, 3),
                health_after=str(after.health),
            )
        self._apply_mode_requests(name, result, request)
        report = StepReport(
            strategy,
            result.ok,
            after.healthy,
            result.detail,
            result.failure_type,
            round(run.duration, 3),
            run.tries,
        )
        return report, after

    def _interrupted(
        self,
        name: str,
        strategy: str,
        failure_type: str | None,
        attempt_id: str,
        request: RecoverRequest,
        started: float,
        exc: BaseException,
    ) -> None:
        """Ctrl-C or SIGTERM mid-step: the step's commands are already ended (runtime);
        record the step and the attempt, then the exception unwinds and releases the locks."""
        signal_name = signal.Signals(interrupt_exit_code(exc) - 128).name
        detail = f"{strategy} interrupted by {signal_name}"
        with self.store.transaction(self.wait) as tx:
            tx.record(
                "step",
                name,
                strategy=strategy,
                attempt_id=attempt_id,
                trigger=request.trigger,
                outcome=Outcome.INTERRUPTED,
                failure_type=failure_type,
                detail=detail,
            )
            self._finish(
                tx, name, attempt_id, Outcome.INTERRUPTED, started, request, failure_type, detail
            )

    def _apply_mode_requests(
        self, name: str, result: StrategyResult, request: RecoverRequest
    ) -> None:
        operator = self.env.operator(request.operator)
        if result.data.get("enter_degraded"):
            self.degraded.enter(name, operator, result.detail)
        if result.data.get("exit_degraded"):
            self.degraded.leave(name, operator)

    def _strategy_fn(self, name: str, strategy: str) -> Callable[[StrategyContext], StrategyResult]:
        fn = self.components.handler(name).strategies().get(strategy)
        if fn is None:
            return lambda ctx: StrategyResult.failure(
                "strategy_unavailable", f"{strategy} is not implemented by this handler"
            )
        return fn

    def _context(
        self,
        name: str,
        strategy: str,
        failure_type: str | None,
        timeout: float,
        dry_run: bool,
        deadline: float,
    ) -> StrategyContext:
        return StrategyContext(
            component=self.components.context(name),
            params=self.config.strategy(name, strategy).params,
            failure_type=failure_type,
            timeout=timeout,
            dry_run=dry_run,
            service=self.components.service(name),
            deadline=deadline,
        )

    def call_strategy(
        self, name: str, strategy: str, failure_type: str | None, dry_run: bool
    ) -> StrategyResult:
        from recovery_cli.runtime import call_with_timeout, strategy_result_from

        timeout = self.config.step_timeout(name, strategy)
        ctx = self._context(
            name, strategy, failure_type, timeout, dry_run, time.monotonic() + timeout
        )
        return strategy_result_from(
            call_with_timeout(lambda: self._strategy_fn(name, strategy)(ctx), timeout)
        )

    def _confirmed(
        self,
        name: str,
        strategy: str,
        failure_type: str | None,
        attempt_id: str,
        request: RecoverRequest,
    ) -> bool:
        how = "--yes" if request.yes else "interactive confirmation"
        if not request.yes:
            summary = f"{name}: {failure_type or 'unhealthy'}; run {strategy}?"
            if not (
                self.env.interactive and self.confirm and self.confirm(name, strategy, summary)
            ):
                return False
        with self.store.transaction(self.wait) as tx:
            tx.record(
                "approved",
                name,
                strategy=strategy,
                attempt_id=attempt_id,
                trigger=request.trigger,
                operator=self.env.operator(request.operator),
                failure_type=failure_type,
                detail=f"approved by {how}",
            )
        return True

    def _await_approval(
        self,
        name: str,
        strategy: str,
        failure_type: str | None,
        attempt_id: str,
        request: RecoverRequest,
        steps: list[StepReport],
        started: float,
    ) -> ComponentReport:
        params = self.config.strategy(name, strategy).params
        req = approvals.Request(name, strategy, params, failure_type, attempt_id)
        now = self.store.now()
        with self.store.transaction(self.wait) as tx:
            approvals.expire_old(tx.state, now)
            approval, created = approvals.request(
                tx.state,
                req,
                now,
                self.config.defaults.approval_ttl_seconds,
                self.env.operator(request.operator),
            )
            tx.changed()
            if created:
                tx.record(
                    "approval_requested",
                    name,
                    strategy=strategy,
                    attempt_id=attempt_id,
                    trigger=request.trigger,
                    approval_id=approval["id"],
                    failure_type=failure_type,
                    detail=f"plan {approval['plan_hash']}, expires {approval['expires']:.0f}",
                )
            self._finish(
                tx,
                name,
                attempt_id,
                Outcome.AWAITING_APPROVAL,
                started,
                request,
                failure_type,
                f"{strategy} needs approval: recovery approve {approval['id']}",
            )
        if created:
            self._alert(
                "RecoveryApprovalNeeded",
                name,
                f"{name}: {strategy} awaits approval {approval['id']}",
            )
        detail = f"{strategy} needs approval; run: recovery approve {approval['id']}"
        return ComponentReport(
            name,
            ExitCode.BLOCKED,
            "awaiting_approval",
            "down",
            failure_type,
            detail,
            reason=BlockReason.APPROVAL,
            steps=tuple(steps),
            approval_id=approval["id"],
            attempt_id=attempt_id,
        )

    def _finish(
        self,
        tx: Transaction,
        name: str,
        attempt_id: str,
        outcome: Outcome,
        started: float,
        request: RecoverRequest,
        failure_type: str | None,
        detail: str,
    ) -> None:
        tx.record(
            "attempt",
            name,
            outcome=outcome,
            attempt_id=attempt_id,
            trigger=request.trigger,
            failure_type=failure_type,
            detail=detail,
            duration_s=round(time.monotonic() - started, 3),
            operator=self.env.operator(request.operator),
        )

    def _succeeded(
        self,
        name: str,
        attempt_id: str,
        request: RecoverRequest,
        steps: list[StepReport],
        started: float,
        after: ProbeResult,
    ) -> ComponentReport:
        with self.store.transaction(self.wait) as tx:
            self._finish(
                tx,
                name,
                attempt_id,
                Outcome.SUCCESS,
                started,
                request,
                None,
                f"healthy after {steps[-1].strategy}",
            )
        self.degraded.leave(name, self.env.operator(request.operator))
        return ComponentReport(
            name,
            ExitCode.OK,
            "recovered",
            after.health,
            None,
            after.detail,
            steps=tuple(steps),
            attempt_id=attempt_id,
        )

    def _failed(
        self,
        name: str,
        attempt_id: str,
        request: RecoverRequest,
        steps: list[StepReport],
        started: float,
        failure_type: str | None,
    ) -> ComponentReport:
        detail = f"still unhealthy after {', '.join(s.strategy for s in steps) or 'no step'}"
        with self.store.transaction(self.wait) as tx:
            self._finish(
                tx, name, attempt_id, Outcome.FAILED, started, request, failure_type, detail
            )
        self.degraded.enter(name, self.env.operator(request.operator), detail)
        self._alert("RecoveryFailed", name, f"{name}: {detail} ({failure_type})")
        return ComponentReport(
            name,
            ExitCode.UNHEALTHY,
            "failed",
            "down",
            failure_type,
            detail,
            steps=tuple(steps),
            attempt_id=attempt_id,
        )

    def _alert(self, alert: str, name: str, summary: str) -> None:
        """Queued: sent by the caller once the component lock is released."""
        labels = {"component": name, "severity": self.config.components[name].priority}
        self.outbox.add(alert, labels, summary, self.store.now())

    def send_alerts(self) -> None:
        self.warnings += self.outbox.flush(self.config.alerting)
