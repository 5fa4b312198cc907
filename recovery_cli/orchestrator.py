"""Recovery runs: probe, choose the chain, pass the gates, run steps, validate, record."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from recovery_cli import approvals, policy
from recovery_cli.alerts import send_alert
from recovery_cli.config import Config
from recovery_cli.context import Environment
from recovery_cli.degraded import DegradedModes
from recovery_cli.errors import UsageError
from recovery_cli.exitcodes import ExitCode
from recovery_cli.graph import topological_order
from recovery_cli.handlers.base import ProbeResult, StrategyContext, StrategyResult
from recovery_cli.policy import BlockReason, Outcome
from recovery_cli.registry import HandlerUnavailable
from recovery_cli.reports import ComponentReport, StepReport
from recovery_cli.runtime import Components
from recovery_cli.steps import run_step
from recovery_cli.store import Store, Transaction

PRIORITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
# A component lock obtained after waiting means another run just acted: look again.
WAITED_FOR_LOCK = 0.05

Confirm = Callable[[str, str, str], bool]


@dataclass(frozen=True)
class RecoverRequest:
    components: tuple[str, ...] = ()
    strategy: str | None = None
    dry_run: bool = False
    yes: bool = False
    force: bool = False
    operator: str | None = None
    trigger: str = "manual"


class Orchestrator:
    def __init__(
        self,
        config: Config,
        store: Store,
        env: Environment,
        components: Components,
        confirm: Confirm | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.env = env
        self.components = components
        self.confirm = confirm
        self.degraded = DegradedModes(config, store)
        self.warnings: list[str] = []

    # -- selection ----------------------------------------------------------------------------

    def ordered(self, names: Sequence[str] = ()) -> list[str]:
        unknown = [n for n in names if n not in self.config.components]
        if unknown:
            known = ", ".join(self.config.components)
            raise UsageError(f"unknown component {unknown[0]!r} (configured: {known})")
        graph = {n: c.depends_on for n, c in self.config.components.items()}
        rank = {n: PRIORITY_RANK[c.priority] for n, c in self.config.components.items()}
        order = topological_order(graph, rank)
        return [n for n in order if not names or n in names]

    def _check_strategy(self, request: RecoverRequest, names: list[str]) -> None:
        if request.strategy is None:
            return
        if len(names) != 1:
            raise UsageError("--strategy needs exactly one component")
        known = self._known_strategies(names[0])
        if request.strategy not in known:
            raise UsageError(
                f"component {names[0]!r} has no strategy {request.strategy!r} "
                f"(known: {', '.join(known)})"
            )

    def _known_strategies(self, name: str) -> list[str]:
        from recovery_cli.registry import KINDS

        component = self.config.components[name]
        declared = KINDS[component.kind].strategies
        return list(component.strategies) if declared is None else list(declared)

    # -- recover ------------------------------------------------------------------------------

    def recover(self, request: RecoverRequest) -> list[ComponentReport]:
        names = self.ordered(request.components)
        self._check_strategy(request, names)
        reports = [self._recover_one(name, request) for name in names]
        if not request.dry_run:
            with self.store.transaction(self.config.defaults.lock_wait_seconds) as tx:
                tx.state.last_run = self.store.now()
                approvals.prune_closed(tx.state, self.store.now())
                tx.changed()
                self.store.audit.prune(self.config.audit.retention_days, self.store.now())
        return reports

    def _recover_one(self, name: str, request: RecoverRequest) -> ComponentReport:
        try:
            self.components.handler(name)
        except HandlerUnavailable as exc:
            return ComponentReport(
                name, ExitCode.UNHEALTHY, "unavailable", "unknown", "handler_unavailable", str(exc)
            )
        probe = self.components.probe(name)
        if probe.healthy and not request.force:
            return self._healthy(name, probe, request)
        if request.dry_run:
            return self._dry_run(name, probe, request)
        with self.store.component_lock(name) as lock:
            acquired = lock.acquire(self.config.defaults.lock_wait_seconds)
            if acquired and lock.waited > WAITED_FOR_LOCK:
                probe = self.components.probe(name, fresh=True)
                if probe.healthy and not request.force:
                    return self._healthy(name, probe, request)
            return self._gate_and_run(name, probe, request, lock_held=not acquired)

    def _healthy(self, name: str, probe: ProbeResult, request: RecoverRequest) -> ComponentReport:
        if not request.dry_run:
            self.degraded.leave(name, self.env.operator(request.operator))
        return ComponentReport(name, ExitCode.OK, "healthy", probe.health, None, probe.detail)

    def _chain(self, name: str, probe: ProbeResult, request: RecoverRequest) -> list[str]:
        return (
            [request.strategy]
            if request.strategy
            else self.config.chain_for(name, probe.failure_type)
        )

    def _dependencies_down(self, name: str) -> list[str]:
        deps = self.config.components[name].depends_on
        return [d for d in deps if not self.components.probe(d).healthy]

    def _gate_and_run(
        self, name: str, probe: ProbeResult, request: RecoverRequest, lock_held: bool
    ) -> ComponentReport:
        chain = self._chain(name, probe, request)
        if self.config.components[name].mode == "shadow":
            return self._shadow(name, probe, chain, request)
        decision, attempt_id = self._admit(name, probe, chain, request, lock_held)
        if not decision.allowed:
            return self._blocked_report(name, probe, decision, chain)
        assert attempt_id is not None
        return self._run_chain(name, chain, probe, attempt_id, request)

    def _window(self, tx: Transaction | None, name: str) -> policy.Window:
        now = self.store.now()
        cooldown = self.config.cooldown(name)
        records = self.store.audit.read_back(
            since=policy.lookback_since(now, cooldown), contains=f'"component":"{name}"'.encode()
        )
        return policy.build_window(records, name, self.config.hourly_cap(name), cooldown, now)

    def _decide(self, tx: Transaction, name: str, lock_held: bool) -> policy.Decision:
        now = self.store.now()
        inputs = policy.GateInputs(
            component=name,
            window=self._window(tx, name),
            disabled=policy.disabled_entry(tx.state.disabled, name, now),
            dependencies_down=self._dependencies_down(name),
            lock_held=lock_held,
        )
        return policy.evaluate(inputs)

    def _admit(
        self,
        name: str,
        probe: ProbeResult,
        chain: list[str],
        request: RecoverRequest,
        lock_held: bool,
    ) -> tuple[policy.Decision, str | None]:
        """Gates and the intent record, in one critical section: no two processes can both
        see budget left and both act on it."""
        common = {
            "trigger": request.trigger,
            "failure_type": probe.failure_type,
            "operator": self.env.operator(request.operator),
        }
        with self.store.transaction(self.config.defaults.lock_wait_seconds) as tx:
            decision = self._decide(tx, name, lock_held)
            if not decision.allowed:
                tx.record(
                    "blocked",
                    name,
                    outcome=Outcome.BLOCKED,
                    reason=decision.reason,
                    detail=decision.detail,
                    **common,
                )
                return decision, None
            attempt_id = self.store_id()
            tx.record(
                "attempt",
                name,
                outcome=Outcome.STARTED,
                attempt_id=attempt_id,
                strategy=",".join(chain),
                detail=probe.detail,
                **common,
            )
            return decision, attempt_id

    def store_id(self) -> str:
        from recovery_cli.audit import new_id

        return new_id()

    def _blocked_report(
        self, name: str, probe: ProbeResult, decision: policy.Decision, chain: list[str]
    ) -> ComponentReport:
        return ComponentReport(
            name,
            ExitCode.BLOCKED,
            "blocked",
            probe.health,
            probe.failure_type,
            decision.detail,
            reason=str(decision.reason),
            plan=tuple(chain),
        )

    def _shadow(
        self, name: str, probe: ProbeResult, chain: list[str], request: RecoverRequest
    ) -> ComponentReport:
        detail = f"shadow mode: would run {', '.join(chain)}"
        with self.store.transaction(self.config.defaults.lock_wait_seconds) as tx:
            tx.record(
                "attempt",
                name,
                outcome=Outcome.SHADOW,
                strategy=",".join(chain),
                detail=detail,
                failure_type=probe.failure_type,
                trigger=request.trigger,
            )
        return ComponentReport(
            name,
            ExitCode.BLOCKED,
            "shadow",
            probe.health,
            probe.failure_type,
            detail,
            reason=BlockReason.SHADOW,
            plan=tuple(chain),
        )

    # -- dry run ------------------------------------------------------------------------------

    def _dry_run(self, name: str, probe: ProbeResult, request: RecoverRequest) -> ComponentReport:
        chain = self._chain(name, probe, request)
        with self.store.component_lock(name) if not self.store.read_only else _NoLock() as lock:
            held = not lock.acquire(0)
        with self.store.transaction(self.config.defaults.lock_wait_seconds) as tx:
            decision = self._decide(tx, name, held)
        if not decision.allowed:
            return self._blocked_report(name, probe, decision, chain)
        steps = tuple(self._dry_step(name, s, probe.failure_type) for s in chain)
        return ComponentReport(
            name,
            ExitCode.OK,
            "dry_run",
            probe.health,
            probe.failure_type,
            "dry run: nothing was changed",
            steps=steps,
            plan=tuple(chain),
        )

    def _dry_step(self, name: str, strategy: str, failure_type: str | None) -> StepReport:
        result = self._call_strategy(name, strategy, failure_type, dry_run=True)
        note = " (needs approval)" if self.config.needs_approval(name, strategy) else ""
        return StepReport(
            strategy, result.ok, False, result.detail + note, result.failure_type, 0.0, 1
        )

    # -- the chain ----------------------------------------------------------------------------

    def _run_chain(
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
            step, after = self._step(name, strategy, failure_type, attempt_id, request)
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
        with self.store.transaction(self.config.defaults.lock_wait_seconds) as tx:
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

    def _call_strategy(
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

    # -- approvals ----------------------------------------------------------------------------

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
        with self.store.transaction(self.config.defaults.lock_wait_seconds) as tx:
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
        with self.store.transaction(self.config.defaults.lock_wait_seconds) as tx:
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
        with self.store.transaction(self.config.defaults.lock_wait_seconds) as tx:
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
        with self.store.transaction(self.config.defaults.lock_wait_seconds) as tx:
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
        labels = {"component": name, "severity": self.config.components[name].priority}
        self.warnings += send_alert(self.config.alerting, alert, labels, summary, self.store.now())

    # -- approve ------------------------------------------------------------------------------

    def approve(self, approval_id: str, operator: str | None) -> ComponentReport:
        approval = self._usable_approval(approval_id)
        name = approval["component"]
        request = RecoverRequest(components=(name,), operator=operator, trigger="approve")
        with self.store.component_lock(name) as lock:
            if not lock.acquire(self.config.defaults.lock_wait_seconds):
                return self._refuse(
                    name,
                    approval,
                    BlockReason.LOCK_HELD,
                    "another recovery of this component is running",
                )
            probe = self.components.probe(name, fresh=True)
            if probe.healthy:
                self._close(approval["id"], "not_needed", operator, "component already healthy")
                return ComponentReport(
                    name,
                    ExitCode.OK,
                    "healthy",
                    probe.health,
                    None,
                    "already healthy; approval closed unused",
                    approval_id=approval["id"],
                )
            refusal = self._approval_refusal(name, approval, probe)
            if refusal is not None:
                return refusal
            attempt_id = self._consume(approval, probe, request)
            chain = self.config.chain_for(name, approval["failure_type"])
            remaining = (
                chain[chain.index(approval["strategy"]) :]
                if approval["strategy"] in chain
                else [approval["strategy"]]
            )
            report = self._run_chain(
                name, remaining, probe, attempt_id, request, approved=approval["strategy"]
            )
            return replace(report, approval_id=report.approval_id or approval["id"])

    def _usable_approval(self, approval_id: str) -> dict[str, Any]:
        with self.store.transaction(self.config.defaults.lock_wait_seconds) as tx:
            expired = approvals.expire_old(tx.state, self.store.now())
            if expired:
                tx.changed()
            approval = approvals.find(tx.state, approval_id)
        approvals.check_usable(approval, self.store.now())
        return approval

    def _approval_refusal(
        self, name: str, approval: dict[str, Any], probe: ProbeResult
    ) -> ComponentReport | None:
        now = self.store.now()
        disabled = policy.disabled_entry(self.store.load_state().disabled, name, now)
        if disabled is not None:
            return self._refuse(
                name,
                approval,
                BlockReason.DISABLED,
                f"component disabled: {disabled.get('reason', '')}",
            )
        params = self.config.strategy(name, approval["strategy"]).params
        digest = approvals.plan_hash(name, approval["strategy"], params, probe.failure_type)
        if digest != approval["plan_hash"]:
            self._close(approval["id"], "superseded", None, "plan changed")
            detail = (
                f"plan changed since the request (failure was {approval['failure_type']}, now "
                f"{probe.failure_type}); run `recovery recover {name}` for a fresh approval"
            )
            return self._refuse(name, approval, BlockReason.PLAN_CHANGED, detail)
        return None

    def _refuse(
        self, name: str, approval: dict[str, Any], reason: BlockReason, detail: str
    ) -> ComponentReport:
        with self.store.transaction(self.config.defaults.lock_wait_seconds) as tx:
            tx.record(
                "blocked",
                name,
                outcome=Outcome.BLOCKED,
                reason=reason,
                strategy=approval["strategy"],
                approval_id=approval["id"],
                trigger="approve",
                detail=detail,
            )
        return ComponentReport(
            name,
            ExitCode.BLOCKED,
            "blocked",
            "down",
            approval.get("failure_type"),
            detail,
            reason=str(reason),
            approval_id=approval["id"],
        )

    def _consume(
        self, approval: dict[str, Any], probe: ProbeResult, request: RecoverRequest
    ) -> str:
        """Mark the approval used and write the attempt intent, atomically: single use even
        when two people approve at the same second."""
        name = approval["component"]
        operator = self.env.operator(request.operator)
        with self.store.transaction(self.config.defaults.lock_wait_seconds) as tx:
            current = tx.state.approvals.get(approval["id"])
            if current is None:
                raise approvals.ApprovalRefused(f"approval {approval['id']} vanished")
            approvals.check_usable(current, self.store.now())
            current.update(status="approved", approved_by=operator, approved_at=self.store.now())
            tx.changed()
            tx.record(
                "approved",
                name,
                strategy=approval["strategy"],
                approval_id=approval["id"],
                operator=operator,
                trigger="approve",
                failure_type=probe.failure_type,
                detail=f"approved by {operator}",
            )
            attempt_id = self.store_id()
            tx.record(
                "attempt",
                name,
                outcome=Outcome.STARTED,
                attempt_id=attempt_id,
                strategy=approval["strategy"],
                trigger="approve",
                operator=operator,
                failure_type=probe.failure_type,
                approval_id=approval["id"],
            )
        return attempt_id

    def _close(self, approval_id: str, status: str, operator: str | None, detail: str) -> None:
        with self.store.transaction(self.config.defaults.lock_wait_seconds) as tx:
            approval = tx.state.approvals[approval_id]
            approval.update(
                status=status, closed_by=self.env.operator(operator), closed_at=self.store.now()
            )
            tx.changed()
            event = "rejected" if status == "rejected" else "approval_closed"
            tx.record(
                event,
                approval["component"],
                strategy=approval["strategy"],
                approval_id=approval_id,
                operator=self.env.operator(operator),
                outcome=status,
                detail=detail,
                trigger="approve",
            )

    def reject(self, approval_id: str, operator: str | None, reason: str) -> dict[str, Any]:
        with self.store.transaction(self.config.defaults.lock_wait_seconds) as tx:
            approvals.expire_old(tx.state, self.store.now())
            tx.changed()
            approval = approvals.find(tx.state, approval_id)
        if approval["status"] != approvals.PENDING:
            raise approvals.ApprovalRefused(
                f"approval {approval['id']} is {approval['status']}, not pending"
            )
        self._close(approval["id"], "rejected", operator, reason)
        return approval


class _NoLock:
    def __enter__(self) -> _NoLock:
        return self

    def acquire(self, wait: float) -> bool:
        return True

    def __exit__(self, *exc: object) -> None:
        return None
