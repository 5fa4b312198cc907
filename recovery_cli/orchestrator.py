"""Recovery runs: probe, choose the chain, pass the gates, then hand over to the chain runner."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from recovery_cli import approvals, policy
from recovery_cli.approval_flow import ApprovalFlow
from recovery_cli.chain import ChainRunner
from recovery_cli.errors import UsageError
from recovery_cli.exitcodes import ExitCode
from recovery_cli.graph import topological_order
from recovery_cli.handlers.base import ProbeResult
from recovery_cli.locking import FileLock
from recovery_cli.policy import BlockReason, Outcome
from recovery_cli.registry import HandlerUnavailable
from recovery_cli.reports import ComponentReport, StepReport
from recovery_cli.runs import RecoverRequest, RunParts
from recovery_cli.store import Transaction

__all__ = ["Orchestrator", "RecoverRequest"]

PRIORITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
# A component lock obtained after waiting means another run just acted: look again.
WAITED_FOR_LOCK = 0.05


class Orchestrator(RunParts):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chain = ChainRunner(self.config, self.store, self.env, self.components, self.confirm)
        self.chain.warnings = self.warnings
        self.chain.degraded = self.degraded
        self.approval_flow = ApprovalFlow(self.chain)

    def approve(self, approval_id: str, operator: str | None) -> ComponentReport:
        return self.approval_flow.approve(approval_id, operator)

    def reject(self, approval_id: str, operator: str | None, reason: str) -> dict[str, Any]:
        return self.approval_flow.reject(approval_id, operator, reason)

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

    def recover(self, request: RecoverRequest) -> list[ComponentReport]:
        names = self.ordered(request.components)
        self._check_strategy(request, names)
        reports = [self._recover_one(name, request) for name in names]
        if not request.dry_run:
            with self.store.transaction(self.wait) as tx:
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
            report = self._locked(name, probe, request, lock)
        self.chain.send_alerts()  # never while the component lock is held
        return report

    def _locked(
        self, name: str, probe: ProbeResult, request: RecoverRequest, lock: FileLock
    ) -> ComponentReport:
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
        return self.chain.run_chain(name, chain, probe, attempt_id, request)

    def _decide(self, tx: Transaction, name: str, lock_held: bool) -> policy.Decision:
        now = self.store.now()
        inputs = policy.GateInputs(
            component=name,
            window=self.store.window(
                name, self.config.hourly_cap(name), self.config.cooldown(name)
            ),
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
        with self.store.transaction(self.wait) as tx:
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
            attempt_id = tx.start_attempt(
                name,
                strategy=",".join(chain),
                detail=probe.detail,
                **common,
            )
            return decision, attempt_id

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
        with self.store.transaction(self.wait) as tx:
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

    def _dry_run(self, name: str, probe: ProbeResult, request: RecoverRequest) -> ComponentReport:
        chain = self._chain(name, probe, request)
        with self.store.component_lock(name) if not self.store.read_only else _NoLock() as lock:
            held = not lock.acquire(0)
        with self.store.transaction(self.wait) as tx:
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
        result = self.chain.call_strategy(name, strategy, failure_type, dry_run=True)
        note = " (needs approval)" if self.config.needs_approval(name, strategy) else ""
        return StepReport(
            strategy, result.ok, False, result.detail + note, result.failure_type, 0.0, 1
        )


class _NoLock:
    def __enter__(self) -> _NoLock:
        return self

    def acquire(self, wait: float) -> bool:
        return True

    def __exit__(self, *exc: object) -> None:
        return None
