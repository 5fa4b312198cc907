"""Running a chain: steps with retries and timeouts, a re-probe after each, and the attempt's
end: success, failure (cooldown and degraded modes for an automatic chain), a step that waits
for an approval, or an interruption. Each end moves the component's lifecycle state."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeGuard

from recovery_cli import alerts, approvals
from recovery_cli.audit import Event
from recovery_cli.errors import ExitCode, Terminated, interrupt_exit_code
from recovery_cli.handlers.base import (
    LOST,
    WOULD_LOSE,
    ProbeResult,
    StrategyContext,
    StrategyResult,
)
from recovery_cli.handlers.util import format_ts
from recovery_cli.lifecycle import LifeState, observe
from recovery_cli.policy import BlockReason, Outcome
from recovery_cli.results import ComponentReport, StepReport
from recovery_cli.run_context import RecoverRequest, RunContext
from recovery_cli.steps import run_step
from recovery_cli.store import Transaction

CHAIN_EXHAUSTED = "chain_exhausted"
PERSON_RUN_FAILED = "manual_run_failed"


@dataclass(frozen=True)
class Attempt:
    """One chain run that counts against the cap: its intent record is already written."""

    name: str
    attempt_id: str
    request: RecoverRequest
    started: float
    follow_up: bool = False  # a healthy component's follow-up step: not counted as recovery


def _discards(loss: object) -> TypeGuard[Mapping[str, Any]]:
    """A ``Loss.to_data()`` that names something (a count above 0, or one not counted)."""
    return isinstance(loss, Mapping) and loss.get("count") != 0


def lost_data(result: StrategyResult) -> dict[str, Any] | None:
    """What the step discarded and could not give back (``None``: nothing)."""
    lost = result.data.get(LOST)
    return dict(lost) if _discards(lost) else None


def loss_note(plan: Mapping[str, Any] | None) -> str:
    """``; would lose: ...`` for a plan that discards something, else empty."""
    loss = (plan or {}).get(WOULD_LOSE)
    return f"; would lose: {loss.get('summary')}" if _discards(loss) else ""


def losses_note(steps: Sequence[StepReport]) -> str:
    """``; data lost: ...`` naming what the steps discarded for good, else empty."""
    losses = [str(s.lost.get("summary")) for s in steps if s.lost]
    return "; data lost: " + "; ".join(losses) if losses else ""


def loss_alert(ctx: RunContext, name: str, detail: str) -> alerts.PendingAlert:
    """One alert for data a recovery discarded: nothing resolves it but its end time (a
    person reads the audit trail and the quarantine)."""
    now = ctx.env.clock.now()
    labels = {
        "alertname": alerts.DATA_LOSS_ALERT,
        "component": name,
        "host": ctx.env.host,
        "severity": "critical",
        "state": str(LifeState.HEALTHY),
        "reason": str(Outcome.RECOVERED_WITH_LOSS),
    }
    summary = f"{name} on {ctx.env.host}: recovered with data loss: {detail}"
    return alerts.PendingAlert(labels, summary, now, now + alerts.DATA_LOSS_ALERT_SECONDS)


class ChainRunner:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def run_chain(
        self,
        attempt: Attempt,
        chain: Sequence[str],
        probe: ProbeResult,
        approved: str | None = None,
    ) -> ComponentReport:
        steps: list[StepReport] = []
        failure_type = probe.failure_type
        for strategy in chain:
            if self._needs_a_human(attempt, strategy, approved):
                plan = self.step_plan(attempt.name, strategy, failure_type, attempt.request)
                if not attempt.request.yes:
                    return self.await_approval(attempt, strategy, failure_type, steps, plan=plan)
                self._approved_by_yes(attempt, strategy, failure_type, plan)
            try:
                step, after = self._step(attempt, strategy, failure_type)
            except (KeyboardInterrupt, Terminated) as exc:
                self._interrupted(attempt, strategy, failure_type, exc)
                raise
            steps.append(step)
            if after.healthy:
                return self._succeeded(attempt, steps, after)
            failure_type = after.failure_type or failure_type
        return self._failed(attempt, steps, failure_type)

    def run_follow_up(self, attempt: Attempt, strategy: str, probe: ProbeResult) -> ComponentReport:
        """A healthy component's follow-up step (``restore_config`` once the primary is
        back). It ends like a recovery when it worked; when it failed and the component is
        still healthy, the attempt is recorded failed and the component stays healthy."""
        try:
            step, after = self._step(attempt, strategy, probe.failure_type)
        except (KeyboardInterrupt, Terminated) as exc:
            self._interrupted(attempt, strategy, probe.failure_type, exc)
            raise
        if not after.healthy:
            return self._failed(attempt, [step], after.failure_type)
        if step.ok:
            return self._succeeded(attempt, [step], after)
        return self._follow_up_failed(attempt, step, after)

    def _follow_up_failed(
        self, attempt: Attempt, step: StepReport, after: ProbeResult
    ) -> ComponentReport:
        ctx, name = self.ctx, attempt.name
        detail = f"follow-up {step.strategy} failed: {step.detail}" + losses_note([step])
        with ctx.store.transaction(ctx.wait) as tx:
            self._finish(tx, attempt, Outcome.FAILED, step.strategy, step.failure_type, detail)
            life = replace(ctx.tracker.life(tx.state, name), marks=after.marks)
            ctx.tracker.put(tx, name, life, LifeState.HEALTHY, "follow-up failed", detail)
        if step.lost:
            ctx.outbox.add([loss_alert(ctx, name, detail)])
        return ComponentReport(
            name,
            ExitCode.OK,
            "healthy",
            after.health,
            None,
            f"{after.detail}; {detail}",
            steps=(step,),
            attempt_id=attempt.attempt_id,
        )

    def _needs_a_human(self, attempt: Attempt, strategy: str, approved: str | None) -> bool:
        return strategy != approved and self.ctx.config.needs_approval(attempt.name, strategy)

    def _step(
        self, attempt: Attempt, strategy: str, failure_type: str | None
    ) -> tuple[StepReport, ProbeResult]:
        ctx, name = self.ctx, attempt.name
        timeout = ctx.config.step_timeout(name, strategy)
        run = run_step(
            lambda sctx: self._strategy_fn(name, strategy)(sctx),
            lambda deadline: self._context(
                name, strategy, failure_type, timeout, False, deadline, attempt.request
            ),
            ctx.config.retry(name, strategy),
            timeout,
            sleep=ctx.env.clock.sleep,
            retry_errors=not ctx.config.destructive(name, strategy),
        )
        after = ctx.components.probe(name, fresh=True)
        result = run.result
        with ctx.store.transaction(ctx.wait) as tx:
            tx.record(
                Event.STEP,
                name,
                strategy=strategy,
                attempt_id=attempt.attempt_id,
                trigger=attempt.request.trigger,
                outcome=Outcome.SUCCESS if result.ok else Outcome.FAILED,
                failure_type=failure_type,
                error=result.failure_type,
                detail=result.detail,
                data=dict(result.data) or None,
                tries=run.tries,
                duration_s=round(run.duration, 3),
                health_after=str(after.health),
            )
        self._apply_mode_requests(name, result, attempt.request, after.failure_type or failure_type)
        report = StepReport(
            strategy,
            result.ok,
            after.healthy,
            result.detail,
            result.failure_type,
            round(run.duration, 3),
            run.tries,
            lost_data(result),
        )
        return report, after

    def _interrupted(
        self, attempt: Attempt, strategy: str, failure_type: str | None, exc: BaseException
    ) -> None:
        """Ctrl-C or SIGTERM mid-step: the step's commands are already ended (runtime);
        record the step and the attempt, then the exception unwinds and releases the locks."""
        signal_name = signal.Signals(interrupt_exit_code(exc) - 128).name
        detail = f"{strategy} interrupted by {signal_name}"
        with self.ctx.store.transaction(self.ctx.wait) as tx:
            tx.record(
                Event.STEP,
                attempt.name,
                strategy=strategy,
                attempt_id=attempt.attempt_id,
                trigger=attempt.request.trigger,
                outcome=Outcome.INTERRUPTED,
                failure_type=failure_type,
                detail=detail,
            )
            self._finish(tx, attempt, Outcome.INTERRUPTED, strategy, failure_type, detail)
            self._move(tx, attempt.name, LifeState.FAILING, "interrupted", detail)

    def _apply_mode_requests(
        self, name: str, result: StrategyResult, request: RecoverRequest, failure_type: str | None
    ) -> None:
        operator = self.ctx.env.operator(request.operator)
        if result.data.get("enter_degraded"):
            self.ctx.degraded.enter(name, operator, result.detail, failure_type)
        if result.data.get("exit_degraded"):
            self.ctx.degraded.leave(name, operator)

    def _strategy_fn(self, name: str, strategy: str) -> Callable[[StrategyContext], StrategyResult]:
        fn = self.ctx.components.handler(name).strategies().get(strategy)
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
        request: RecoverRequest | None = None,
    ) -> StrategyContext:
        return StrategyContext(
            component=self.ctx.components.context(name),
            params=self.params(name, strategy, request),
            failure_type=failure_type,
            timeout=timeout,
            dry_run=dry_run,
            service=self.ctx.components.service(name),
            deadline=deadline,
        )

    def params(
        self, name: str, strategy: str, request: RecoverRequest | None = None
    ) -> dict[str, Any]:
        """The step's params: the config's, plus what the request adds."""
        params = dict(self.ctx.config.strategy(name, strategy).params)
        return {**params, **request.extra_params(strategy)} if request else params

    def call_strategy(
        self,
        name: str,
        strategy: str,
        failure_type: str | None,
        dry_run: bool,
        request: RecoverRequest | None = None,
    ) -> StrategyResult:
        from recovery_cli.handler_calls import call_with_timeout, strategy_result_from

        timeout = self.ctx.config.step_timeout(name, strategy)
        ctx = self._context(
            name, strategy, failure_type, timeout, dry_run, time.monotonic() + timeout, request
        )
        return strategy_result_from(
            call_with_timeout(lambda: self._strategy_fn(name, strategy)(ctx), timeout)
        )

    def step_plan(
        self,
        name: str,
        strategy: str,
        failure_type: str | None,
        request: RecoverRequest | None = None,
    ) -> dict[str, Any]:
        """What a step that needs approval would do: its dry run's description and what it
        would discard (``would_lose``). Never called with the store lock held."""
        result = self.call_strategy(name, strategy, failure_type, True, request)
        plan: dict[str, Any] = {"detail": result.detail}
        loss = result.data.get(WOULD_LOSE)
        if isinstance(loss, Mapping):
            plan[WOULD_LOSE] = dict(loss)
        return plan

    def _approved_by_yes(
        self, attempt: Attempt, strategy: str, failure_type: str | None, plan: dict[str, Any]
    ) -> None:
        with self.ctx.store.transaction(self.ctx.wait) as tx:
            tx.record(
                Event.APPROVED,
                attempt.name,
                strategy=strategy,
                attempt_id=attempt.attempt_id,
                trigger=attempt.request.trigger,
                operator=self.ctx.env.operator(attempt.request.operator),
                failure_type=failure_type,
                detail="approved by --yes" + loss_note(plan),
                would_lose=plan.get(WOULD_LOSE),
            )

    def await_approval(
        self,
        attempt: Attempt | None,
        strategy: str,
        failure_type: str | None,
        steps: Sequence[StepReport] = (),
        name: str | None = None,
        request: RecoverRequest | None = None,
        tx: Transaction | None = None,
        plan: dict[str, Any] | None = None,
    ) -> ComponentReport:
        """The step needs a person: one pending approval per plan (created, or the one that
        waits already), the component awaiting it. With no ``attempt`` (the first step needs
        the approval) nothing counts against the cap."""
        name = attempt.name if attempt else name
        request = attempt.request if attempt else request
        assert name is not None and request is not None
        if tx is None:
            with self.ctx.store.transaction(self.ctx.wait) as own:
                return self.await_approval(
                    attempt, strategy, failure_type, steps, name, request, own, plan
                )
        approval = self._pending_approval(tx, name, strategy, failure_type, attempt, request, plan)
        detail = f"{strategy} needs approval: recovery approve {approval.id}" + loss_note(plan)
        if attempt is not None:
            self._finish(tx, attempt, Outcome.AWAITING_APPROVAL, strategy, failure_type, detail)
        self._move(tx, name, LifeState.AWAITING_APPROVAL, str(BlockReason.APPROVAL), detail)
        return ComponentReport(
            name,
            ExitCode.BLOCKED,
            "awaiting_approval",
            self._health(name),
            failure_type,
            f"{strategy} needs approval; run: recovery approve {approval.id}" + loss_note(plan),
            reason=BlockReason.APPROVAL,
            steps=tuple(steps),
            approval_id=approval.id,
            attempt_id=attempt.attempt_id if attempt else None,
        )

    def _pending_approval(
        self,
        tx: Transaction,
        name: str,
        strategy: str,
        failure_type: str | None,
        attempt: Attempt | None,
        request: RecoverRequest,
        plan: dict[str, Any] | None,
    ) -> approvals.Approval:
        ctx = self.ctx
        now = ctx.store.now()
        params = self.params(name, strategy, request)
        req = approvals.Request(
            name,
            strategy,
            params,
            failure_type,
            attempt.attempt_id if attempt else None,
            plan,
            ctx.config.components[name].settings,
        )
        approvals.expire_old(tx.state, now)
        approval, created = approvals.request(
            tx.state,
            req,
            now,
            ctx.config.defaults.approval_ttl_seconds,
            ctx.env.operator(request.operator),
        )
        tx.changed()
        if created:
            tx.record(
                Event.APPROVAL_REQUESTED,
                name,
                strategy=strategy,
                attempt_id=req.attempt_id,
                trigger=request.trigger,
                approval_id=approval.id,
                failure_type=failure_type,
                detail=f"plan {approval.plan_hash}, expires {format_ts(approval.expires)}"
                + loss_note(plan),
                would_lose=req.would_lose,
            )
        elif now - approval.last_notice >= self._renotify():
            approval.notified = now
            tx.record(
                Event.STILL_WAITING,
                name,
                strategy=strategy,
                approval_id=approval.id,
                trigger=request.trigger,
                detail=f"approval {approval.id} still waits",
            )
        return approval

    def _renotify(self) -> float:
        return self.ctx.config.alerting.repeat_seconds

    def _health(self, name: str) -> str:
        return str(self.ctx.components.probe(name).health)

    def _finish(
        self,
        tx: Transaction,
        attempt: Attempt,
        outcome: Outcome,
        strategy: str | None,
        failure_type: str | None,
        detail: str,
    ) -> None:
        tx.record(
            Event.ATTEMPT,
            attempt.name,
            outcome=outcome,
            attempt_id=attempt.attempt_id,
            strategy=strategy,
            trigger=attempt.request.trigger,
            failure_type=failure_type,
            detail=detail,
            duration_s=round(max(0.0, self.ctx.env.clock.monotonic() - attempt.started), 3),
            operator=self.ctx.env.operator(attempt.request.operator),
            follow_up=attempt.follow_up or None,
        )

    def _move(
        self, tx: Transaction, name: str, state: LifeState, reason: str, detail: str = ""
    ) -> None:
        tracker = self.ctx.tracker
        life = tracker.life(tx.state, name)
        grace = self.ctx.config.thresholds(name).grace_seconds
        if state is not LifeState.AWAITING_APPROVAL:
            life = replace(life, grace_until=self.ctx.store.now() + grace)
        tracker.put(tx, name, life, state, reason, detail)

    def _succeeded(
        self, attempt: Attempt, steps: list[StepReport], after: ProbeResult
    ) -> ComponentReport:
        ctx, name = self.ctx, attempt.name
        losses = [s.lost for s in steps if s.lost]
        outcome = Outcome.RECOVERED_WITH_LOSS if losses else Outcome.SUCCESS
        last = steps[-1].strategy
        detail = f"healthy after {last}" + losses_note(steps)
        with ctx.store.transaction(ctx.wait) as tx:
            self._finish(tx, attempt, outcome, last, None, detail)
            life = ctx.tracker.life(tx.state, name)
            counted = observe(life, True, None, ctx.store.now(), ctx.config.thresholds(name))
            counted = replace(counted, marks=after.marks)
            done = counted.successes == 0
            state = LifeState.HEALTHY if done else LifeState.RECOVERING
            reason = f"healthy after {last}" if done else "counting healthy probes"
            grace_until = ctx.store.now() + ctx.config.thresholds(name).grace_seconds
            ctx.tracker.put(tx, name, replace(counted, grace_until=grace_until), state, reason)
        ctx.degraded.leave(name, ctx.env.operator(attempt.request.operator))
        if losses:
            ctx.outbox.add([loss_alert(ctx, name, detail)])
        return ComponentReport(
            name,
            ExitCode.RECOVERED_WITH_LOSS if losses else ExitCode.OK,
            str(Outcome.RECOVERED_WITH_LOSS) if losses else "recovered",
            after.health,
            None,
            detail if losses else after.detail,
            steps=tuple(steps),
            attempt_id=attempt.attempt_id,
        )

    def _failed(
        self, attempt: Attempt, steps: list[StepReport], failure_type: str | None
    ) -> ComponentReport:
        """Only an exhausted automatic chain starts the cooldown and enters the degraded
        modes; a person's failed run is recorded and counts, nothing more."""
        ctx, name = self.ctx, attempt.name
        tried = ", ".join(s.strategy for s in steps) or "no step"
        detail = f"still unhealthy after {tried}" + losses_note(steps)
        last = steps[-1].strategy if steps else None
        automatic = not attempt.request.by_person
        with ctx.store.transaction(ctx.wait) as tx:
            self._finish(tx, attempt, Outcome.FAILED, last, failure_type, detail)
            if automatic:
                self._move(tx, name, LifeState.FAILED, CHAIN_EXHAUSTED, detail)
            else:
                self._move(tx, name, LifeState.FAILING, PERSON_RUN_FAILED, detail)
        if automatic:
            ctx.degraded.enter(
                name, ctx.env.operator(attempt.request.operator), detail, failure_type
            )
        if any(step.lost for step in steps):
            ctx.outbox.add([loss_alert(ctx, name, detail)])
        return ComponentReport(
            name,
            ExitCode.UNHEALTHY,
            "failed",
            self._health(name),
            failure_type,
            detail,
            steps=tuple(steps),
            attempt_id=attempt.attempt_id,
        )
