"""``recovery approve``: re-probe, ask ``policy.decide`` (the same gates as ``recover``, with
the approval given), consume the approval once, run the step and the rest of its chain; and
``--reject``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from recovery_cli import approvals, chain_order, facts, root_cause
from recovery_cli.approvals import Approval, ApprovalStatus
from recovery_cli.audit import Event
from recovery_cli.chain import Attempt, ChainRunner, loss_note
from recovery_cli.chain_order import ChainOrder
from recovery_cli.errors import ExitCode, UsageError
from recovery_cli.handlers.base import WOULD_LOSE, ProbeResult
from recovery_cli.lifecycle import LifeState
from recovery_cli.policy import BlockReason, Decision, Outcome, Verdict
from recovery_cli.results import ComponentReport
from recovery_cli.run_context import OVERRIDE_CONFLICTS, RecoverRequest, RunContext
from recovery_cli.store import Transaction


class ApprovalFlow:
    def __init__(self, ctx: RunContext, chain: ChainRunner) -> None:
        self.ctx = ctx
        self.chain = chain

    def approve(
        self,
        approval_id: str,
        operator: str | None,
        at_prompt: bool = False,
        trigger: str | None = None,
    ) -> ComponentReport:
        """``at_prompt``: a person said yes at ``recover``'s terminal prompt. ``trigger``:
        an approval made by automation (the HTTP API): every gate holds for it, the caps and
        the cooldown included."""
        report = self._approve(approval_id, operator, at_prompt, trigger)
        self.ctx.tracker.settle_alert(self.ctx.store, report.component)
        self.ctx.send_alerts()  # never while the component lock is held
        return report

    def _approve(
        self, approval_id: str, operator: str | None, at_prompt: bool, by: str | None
    ) -> ComponentReport:
        ctx = self.ctx
        approval = self._usable_approval(approval_id)
        name = approval.component
        trigger = by or ("manual" if at_prompt else "approve")
        request = RecoverRequest(
            components=(name,),
            strategy=approval.strategy,
            operator=operator,
            trigger=trigger,
            override_conflicts=bool(approval.params.get(OVERRIDE_CONFLICTS)),
        )
        # a person decided: automation's limits, the caps and the cooldown do not hold it back
        person = (
            request
            if by
            else replace(request, trigger="manual", override_reason=f"approval {approval.id}")
        )
        with ctx.store.component_lock(name) as lock:
            acquired = lock.acquire(ctx.config.defaults.lock_wait_seconds)
            probe = ctx.components.probe(name, fresh=True)
            if acquired and probe.healthy:
                return self._not_needed(approval, probe, operator)
            order = chain_order.resolve(ctx.config, ctx.store, name, approval.failure_type)
            chain = _remaining(order, approval)
            plan = self.chain.step_plan(name, approval.strategy, probe.failure_type, person)
            facts.probe_dependencies(ctx, name)  # before the transaction: no lock held
            with ctx.store.transaction(ctx.wait) as tx:
                life = ctx.tracker.count_probe(tx, name, probe)
                matches = self._plan_matches(name, approval, probe, plan, person)
                asking = facts.Asking(lock_held=not acquired, approved=True, plan_matches=matches)
                decision = facts.decide(ctx, tx, name, life, chain, person, asking)
                if decision.verdict is not Verdict.ACT:
                    return self._refuse(tx, name, approval, decision, matches)
                attempt = self._consume(tx, approval, probe, request, at_prompt, plan, order)
            report = self.chain.run_chain(attempt, chain, probe, approved=approval.strategy)
            return replace(report, approval_id=report.approval_id or approval.id)

    def _usable_approval(self, approval_id: str) -> Approval:
        ctx = self.ctx
        with ctx.store.transaction(ctx.wait) as tx:
            if approvals.expire_old(tx.state, ctx.store.now()):
                tx.changed()
            approval = approvals.find(tx.state, approval_id)
        approvals.check_usable(approval, ctx.store.now())
        if approval.component not in ctx.config.components:
            raise UsageError(
                f"approval {approval.id} is for component {approval.component!r}, "
                "which the config no longer has; reject it with --reject --reason"
            )
        return approval

    def _plan_matches(
        self,
        name: str,
        approval: Approval,
        probe: ProbeResult,
        plan: Mapping[str, Any],
        request: RecoverRequest,
    ) -> bool:
        """The same step, params and failure, and it would discard what the person saw."""
        params = self.chain.params(name, approval.strategy, request)
        loss = plan.get(WOULD_LOSE)
        digest = approvals.plan_hash(
            name,
            approval.strategy,
            params,
            probe.failure_type,
            loss if isinstance(loss, Mapping) else None,
            self.ctx.config.components[name].settings,
        )
        return digest == approval.plan_hash

    def _not_needed(
        self, approval: Approval, probe: ProbeResult, operator: str | None
    ) -> ComponentReport:
        ctx, name = self.ctx, approval.component
        with ctx.store.transaction(ctx.wait) as tx:
            self._close(
                tx, approval.id, ApprovalStatus.NOT_NEEDED, operator, "component already healthy"
            )
            ctx.tracker.count_probe(tx, name, probe)
        return ComponentReport(
            name,
            ExitCode.OK,
            "healthy",
            probe.health,
            None,
            "already healthy; approval closed unused",
            approval_id=approval.id,
        )

    def _refuse(
        self,
        tx: Transaction,
        name: str,
        approval: Approval,
        decision: Decision,
        plan_matches: bool,
    ) -> ComponentReport:
        detail = decision.detail
        if not plan_matches:
            self._close(tx, approval.id, ApprovalStatus.SUPERSEDED, None, "plan changed")
            detail = (
                f"plan changed since the request (failure was {approval.failure_type}, "
                "or what the step would discard changed); "
                f"run `recovery recover {name}` for a fresh approval"
            )
        tx.record(
            Event.BLOCKED,
            name,
            outcome=Outcome.BLOCKED,
            reason=decision.reason,
            strategy=approval.strategy,
            approval_id=approval.id,
            trigger="approve",
            detail=detail,
            root_cause=root_cause.label(decision.root_cause) or None,
        )
        if decision.reason != BlockReason.LOCK_HELD:
            life = self.ctx.tracker.life(tx.state, name)
            self.ctx.tracker.put(
                tx, name, life, decision.state, str(decision.reason), detail, decision.root_cause
            )
        return ComponentReport(
            name,
            ExitCode.BLOCKED,
            "blocked",
            str(self.ctx.components.probe(name).health),
            approval.failure_type,
            detail,
            reason=str(decision.reason),
            approval_id=approval.id,
        )

    def _consume(
        self,
        tx: Transaction,
        approval: Approval,
        probe: ProbeResult,
        request: RecoverRequest,
        at_prompt: bool = False,
        plan: Mapping[str, Any] | None = None,
        order: ChainOrder | None = None,
    ) -> Attempt:
        """Mark the approval used and write the attempt intent in the decision's transaction:
        single use even when two people approve at the same second."""
        ctx, name = self.ctx, approval.component
        operator = ctx.env.operator(request.operator)
        current = tx.state.approvals.get(approval.id)
        if current is None:
            raise approvals.ApprovalRefused(f"approval {approval.id} vanished")
        approvals.check_usable(current, ctx.store.now())
        current.status = ApprovalStatus.APPROVED
        current.approved_by = operator
        current.approved_at = ctx.store.now()
        tx.changed()
        how = " (interactive confirmation)" if at_prompt else ""
        tx.record(
            Event.APPROVED,
            name,
            strategy=approval.strategy,
            approval_id=approval.id,
            operator=operator,
            trigger=request.trigger,
            failure_type=probe.failure_type,
            detail=f"approved by {operator}{how}" + loss_note(plan),
            would_lose=(plan or {}).get(WOULD_LOSE),
        )
        attempt_id = tx.start_attempt(
            name,
            strategy=approval.strategy,
            trigger=request.trigger,
            operator=operator,
            failure_type=probe.failure_type,
            approval_id=approval.id,
            chain_order=order.to_record() if order else None,
        )
        life = ctx.tracker.life(tx.state, name)
        ctx.tracker.put(tx, name, life, LifeState.RECOVERING, "approved", f"approved by {operator}")
        return Attempt(name, attempt_id, request, ctx.env.clock.monotonic())

    def _close(
        self,
        tx: Transaction,
        approval_id: str,
        status: ApprovalStatus,
        operator: str | None,
        detail: str,
    ) -> None:
        who = self.ctx.env.operator(operator)
        approval = tx.state.approvals[approval_id]
        approval.status = status
        approval.closed_by = who
        approval.closed_at = self.ctx.store.now()
        tx.changed()
        event = Event.REJECTED if status is ApprovalStatus.REJECTED else Event.APPROVAL_CLOSED
        tx.record(
            event,
            approval.component,
            strategy=approval.strategy,
            approval_id=approval_id,
            operator=who,
            outcome=status,
            detail=detail,
            trigger="approve",
        )

    def reject(self, approval_id: str, operator: str | None, reason: str) -> Approval:
        ctx = self.ctx
        with ctx.store.transaction(ctx.wait) as tx:
            approvals.expire_old(tx.state, ctx.store.now())
            tx.changed()
            approval = approvals.find(tx.state, approval_id)
            if approval.status is not ApprovalStatus.PENDING:
                raise approvals.ApprovalRefused(
                    f"approval {approval.id} is {approval.status}, not pending"
                )
            self._close(tx, approval.id, ApprovalStatus.REJECTED, operator, reason)
            name = approval.component
            life = ctx.tracker.life(tx.state, name)
            ctx.tracker.put(tx, name, life, LifeState.BLOCKED, "rejected", reason)
        ctx.tracker.settle_alert(ctx.store, approval.component)
        ctx.send_alerts()
        return approval


def _remaining(order: ChainOrder, approval: Approval) -> list[str]:
    """The approved step and what follows it in the chain's order (the step alone when the
    chain no longer holds it)."""
    chain = list(order.order)
    if approval.strategy in chain:
        return chain[chain.index(approval.strategy) :]
    return [approval.strategy]
