"""``recovery approve``: re-probe, check the plan, consume the approval once, run the step
and the rest of its chain; and ``--reject``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from recovery_cli import approvals, policy
from recovery_cli.chain import ChainRunner
from recovery_cli.exitcodes import ExitCode
from recovery_cli.handlers.base import ProbeResult
from recovery_cli.policy import BlockReason, Outcome
from recovery_cli.reports import ComponentReport
from recovery_cli.runs import RecoverRequest, RunParts


class ApprovalFlow(RunParts):
    def __init__(self, chain: ChainRunner) -> None:
        super().__init__(chain.config, chain.store, chain.env, chain.components, chain.confirm)
        self.chain = chain

    def approve(self, approval_id: str, operator: str | None) -> ComponentReport:
        report = self._approve(approval_id, operator)
        self.chain.send_alerts()  # never while the component lock is held
        return report

    def _approve(self, approval_id: str, operator: str | None) -> ComponentReport:
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
            report = self.chain.run_chain(
                name, remaining, probe, attempt_id, request, approved=approval["strategy"]
            )
            return replace(report, approval_id=report.approval_id or approval["id"])

    def _usable_approval(self, approval_id: str) -> dict[str, Any]:
        with self.store.transaction(self.wait) as tx:
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
        with self.store.transaction(self.wait) as tx:
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
        with self.store.transaction(self.wait) as tx:
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
            attempt_id = tx.start_attempt(
                name,
                strategy=approval["strategy"],
                trigger="approve",
                operator=operator,
                failure_type=probe.failure_type,
                approval_id=approval["id"],
            )
        return attempt_id

    def _close(self, approval_id: str, status: str, operator: str | None, detail: str) -> None:
        with self.store.transaction(self.wait) as tx:
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
        with self.store.transaction(self.wait) as tx:
            approvals.expire_old(tx.state, self.store.now())
            tx.changed()
            approval = approvals.find(tx.state, approval_id)
        if approval["status"] != approvals.PENDING:
            raise approvals.ApprovalRefused(
                f"approval {approval['id']} is {approval['status']}, not pending"
            )
        self._close(approval["id"], "rejected", operator, reason)
        return approval
