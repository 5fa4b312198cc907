"""Recovery runs: probe, count the probe in the component's lifecycle, ask ``policy.decide``,
then act on its verdict (run the chain, wait for an approval, hold, block or only record)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from recovery_cli import alerts, approvals, chain_order, facts, policy, root_cause
from recovery_cli.approval_run import ApprovalFlow
from recovery_cli.approvals import Approval
from recovery_cli.audit import Event
from recovery_cli.chain import Attempt, ChainRunner
from recovery_cli.chain_order import ChainOrder
from recovery_cli.config import Config
from recovery_cli.environment import Environment
from recovery_cli.errors import ExitCode, UsageError
from recovery_cli.graph import topological_order
from recovery_cli.handler_calls import Components
from recovery_cli.handlers.base import ProbeResult
from recovery_cli.lifecycle import LifeState, observe
from recovery_cli.locking import FileLock
from recovery_cli.policy import Decision, Outcome, Verdict
from recovery_cli.registry import HandlerUnavailable
from recovery_cli.results import ComponentReport, StepReport
from recovery_cli.run_context import RecoverRequest, RunContext
from recovery_cli.store import Store, Transaction

__all__ = ["Orchestrator", "RecoverRequest"]

PRIORITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
# A component lock obtained after waiting means another run just acted: look again.
WAITED_FOR_LOCK = 0.05
# (question, timeout seconds) -> yes, no, or None when nobody answered in time
Prompt = Callable[[str, float], bool | None]


class Orchestrator:
    def __init__(
        self,
        config: Config,
        store: Store,
        env: Environment,
        components: Components,
        prompt: Prompt | None = None,
    ) -> None:
        self.ctx = RunContext(config, store, env, components)
        self.chain = ChainRunner(self.ctx)
        self.approval_flow = ApprovalFlow(self.ctx, self.chain)
        self.prompt = prompt

    @property
    def warnings(self) -> list[str]:
        return self.ctx.warnings

    def approve(
        self, approval_id: str, operator: str | None, trigger: str | None = None
    ) -> ComponentReport:
        """``trigger``: approved by automation (the HTTP API), which every gate holds."""
        return self.approval_flow.approve(approval_id, operator, trigger=trigger)

    def reject(self, approval_id: str, operator: str | None, reason: str) -> Approval:
        return self.approval_flow.reject(approval_id, operator, reason)

    def ordered(self, names: Sequence[str] = ()) -> list[str]:
        config = self.ctx.config
        unknown = [n for n in names if n not in config.components]
        if unknown:
            known = ", ".join(config.components)
            raise UsageError(f"unknown component {unknown[0]!r} (configured: {known})")
        graph = config.dependency_graph()
        rank = {n: PRIORITY_RANK[c.priority] for n, c in config.components.items()}
        order = topological_order(graph, rank)
        return [n for n in order if not names or n in names]

    def _check_request(self, request: RecoverRequest, names: list[str]) -> None:
        if request.override_reason is not None and not request.by_person:
            raise UsageError(
                "--override-limits is for a person: run it at a terminal or name yourself with --as"
            )
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
        if request.override_conflicts and not self._takes_extras(names[0], request):
            raise UsageError(
                f"strategy {request.strategy!r} of {names[0]!r} has no conflicts to override"
            )

    def _takes_extras(self, name: str, request: RecoverRequest) -> bool:
        """Whether the kind's params check accepts what the request adds to the step."""
        from recovery_cli.registry import HandlerUnavailable, config_validator

        assert request.strategy is not None
        component = self.ctx.config.components[name]
        params = self.chain.params(name, request.strategy, request)
        try:
            validate = config_validator(component.kind)
        except HandlerUnavailable:
            return False
        return not validate(component.settings, {request.strategy: params})

    def _known_strategies(self, name: str) -> list[str]:
        from recovery_cli.registry import kind_spec

        component = self.ctx.config.components[name]
        spec = kind_spec(component.kind)
        declared = spec.strategies if spec is not None else ()
        return list(component.strategies) if declared is None else list(declared)

    # -- the run ----------------------------------------------------------------------------

    def recover(self, request: RecoverRequest) -> list[ComponentReport]:
        names = self.ordered(request.components)
        self._check_request(request, names)
        self.ctx.resend_unsent()
        unhealthy = self._unhealthy_count(names)
        reports = [self._recover_one(name, request, unhealthy) for name in names]
        if not request.dry_run:
            self._bookkeeping(unhealthy)
        self.ctx.send_alerts()
        return [self._maybe_prompt(report, request) for report in reports]

    def _bookkeeping(self, unhealthy: int) -> None:
        ctx = self.ctx
        with ctx.store.transaction(ctx.wait) as tx:
            tx.state.last_run = ctx.store.now()
            approvals.prune_closed(tx.state, ctx.store.now())
            self._blast_radius_alert(tx, unhealthy)
            ctx.tracker.forget_removed(tx)
            tx.changed()
        ctx.store.prune(ctx.config.audit.retention_days, ctx.wait)

    def _recover_one(self, name: str, request: RecoverRequest, unhealthy: int) -> ComponentReport:
        ctx = self.ctx
        try:
            ctx.components.handler(name)
        except HandlerUnavailable as exc:
            return ComponentReport(
                name, ExitCode.UNHEALTHY, "unavailable", "unknown", "handler_unavailable", str(exc)
            )
        probe = ctx.components.probe(name)
        if request.dry_run:
            return self._dry_run(name, probe, request, unhealthy)
        if probe.healthy and probe.follow_up and not request.strategy and not request.force:
            report = self._follow_up(name, probe, request)
        elif probe.healthy and not request.force:
            return self._healthy(name, probe, request)
        else:
            with ctx.store.component_lock(name) as lock:
                report = self._locked(name, probe, request, lock, unhealthy)
        ctx.tracker.settle_alert(ctx.store, name)
        ctx.send_alerts()  # never while the component lock is held
        return report

    def _locked(
        self,
        name: str,
        probe: ProbeResult,
        request: RecoverRequest,
        lock: FileLock,
        unhealthy: int,
    ) -> ComponentReport:
        acquired = lock.acquire(self.ctx.config.defaults.lock_wait_seconds)
        if acquired and lock.waited > WAITED_FOR_LOCK:
            probe = self.ctx.components.probe(name, fresh=True)
            if probe.healthy and not request.force:
                return self._healthy(name, probe, request)
        return self._gate_and_run(name, probe, request, not acquired, unhealthy)

    def _follow_up(self, name: str, probe: ProbeResult, request: RecoverRequest) -> ComponentReport:
        """A healthy component whose probe names a step to run (``restore_config`` once the
        primary answers again): run it through the gates as an attempt of its own, which
        counts against no cap or cooldown of the component's recoveries. A gate that refuses,
        or a failure of the same step within the cooldown, leaves it healthy and writes
        nothing: a later run asks again."""
        ctx, strategy = self.ctx, str(probe.follow_up)
        waiting = self._follow_up_backoff(name, strategy)
        if waiting:
            return ComponentReport(
                name, ExitCode.OK, "healthy", probe.health, None, f"{probe.detail}; {waiting}"
            )
        follow = replace(request, strategy=strategy, force=True)
        with ctx.store.component_lock(name) as lock:
            if not lock.acquire(0):
                return self._healthy(name, probe, request)
            facts.probe_dependencies(ctx, name)  # before the transaction: no lock held
            with ctx.store.transaction(ctx.wait) as tx:
                life = ctx.tracker.count_probe(tx, name, probe)
                decision = facts.decide(ctx, tx, name, life, [strategy], follow, facts.Asking())
                if decision.verdict is not Verdict.ACT:
                    held = f"{probe.detail}; {strategy} waits: {decision.detail}"
                    return ComponentReport(name, ExitCode.OK, "healthy", probe.health, None, held)
                attempt = self._start(tx, name, probe, [strategy], follow, follow_up=True)
            return self.chain.run_follow_up(replace(attempt, follow_up=True), strategy, probe)

    def _follow_up_backoff(self, name: str, strategy: str) -> str:
        """Why the follow-up waits: the same step failed within the cooldown."""
        now, cooldown = self.ctx.store.now(), self.ctx.config.cooldown(name)
        last = None
        for record in self.ctx.store.attempts_since(name, now - cooldown):
            if record.get("follow_up") and record.get("strategy") == strategy:
                last = record
        if last is None or last.get("outcome") != Outcome.FAILED:
            return ""
        return (
            f"follow-up {strategy} failed at {last.get('ts')}; it is tried again after {cooldown}s"
        )

    def _healthy(self, name: str, probe: ProbeResult, request: RecoverRequest) -> ComponentReport:
        ctx = self.ctx
        if not ctx.tracker.needs_no_write(ctx.store.load_state(), name, probe):
            with ctx.store.transaction(ctx.wait) as tx:
                ctx.tracker.count_probe(tx, name, probe)
            ctx.tracker.settle_alert(ctx.store, name)
        ctx.degraded.leave(name, ctx.env.operator(request.operator))
        return ComponentReport(name, ExitCode.OK, "healthy", probe.health, None, probe.detail)

    def _chain(self, name: str, probe: ProbeResult, request: RecoverRequest) -> ChainOrder:
        """The steps and the order they run in (read before any lock is taken)."""
        if request.strategy:
            return chain_order.configured([request.strategy], "requested")
        return chain_order.resolve(self.ctx.config, self.ctx.store, name, probe.failure_type)

    def _gate_and_run(
        self,
        name: str,
        probe: ProbeResult,
        request: RecoverRequest,
        lock_held: bool,
        unhealthy: int,
    ) -> ComponentReport:
        ctx = self.ctx
        order = self._chain(name, probe, request)
        chain = list(order.order)
        plan = self._first_step_plan(name, chain, probe, request)
        facts.probe_dependencies(ctx, name)  # before the transaction: no lock held
        with ctx.store.transaction(ctx.wait) as tx:
            life = ctx.tracker.count_probe(tx, name, probe)
            asking = facts.Asking(lock_held=lock_held, unhealthy=unhealthy)
            decision = facts.decide(ctx, tx, name, life, chain, request, asking)
            if decision.verdict is Verdict.AWAIT:
                return self.chain.await_approval(
                    None, chain[0], probe.failure_type, name=name, request=request, tx=tx, plan=plan
                )
            if decision.verdict is not Verdict.ACT:
                return self._refused(tx, name, probe, decision, order, request)
            attempt = self._start(tx, name, probe, chain, request, chain_order=order.to_record())
        return self.chain.run_chain(attempt, chain, probe)

    def _first_step_plan(
        self, name: str, chain: Sequence[str], probe: ProbeResult, request: RecoverRequest
    ) -> dict[str, Any] | None:
        """The dry run of a first step that will wait for a person, made before the state
        lock is taken (it reads the component)."""
        if not chain or request.yes or not self.ctx.config.needs_approval(name, chain[0]):
            return None
        return self.chain.step_plan(name, chain[0], probe.failure_type, request)

    def _start(
        self,
        tx: Transaction,
        name: str,
        probe: ProbeResult,
        chain: Sequence[str],
        request: RecoverRequest,
        **fields: object,
    ) -> Attempt:
        """The intent record, in the same transaction as the decision: no two processes can
        both see budget left and both act on it."""
        ctx = self.ctx
        attempt_id = tx.start_attempt(
            name,
            strategy=",".join(chain),
            detail=probe.detail,
            trigger=request.trigger,
            failure_type=probe.failure_type,
            operator=ctx.env.operator(request.operator),
            override=request.override_reason,
            **fields,
        )
        life = ctx.tracker.life(tx.state, name)
        ctx.tracker.put(tx, name, life, LifeState.RECOVERING, "chain running", probe.detail)
        return Attempt(name, attempt_id, request, ctx.env.clock.monotonic())

    def _refused(
        self,
        tx: Transaction,
        name: str,
        probe: ProbeResult,
        decision: Decision,
        order: ChainOrder,
        request: RecoverRequest,
    ) -> ComponentReport:
        ctx, chain = self.ctx, order.order
        common = {
            "trigger": request.trigger,
            "failure_type": probe.failure_type,
            "operator": ctx.env.operator(request.operator),
            "detail": decision.detail,
        }
        if decision.verdict is Verdict.SHADOW:
            tx.record(
                Event.ATTEMPT,
                name,
                outcome=Outcome.SHADOW,
                strategy=",".join(chain),
                chain_order=order.to_record(),
                **{**common, "detail": f"shadow mode: would run {', '.join(chain)}"},
            )
        elif decision.verdict is Verdict.BLOCK:
            tx.record(
                Event.BLOCKED,
                name,
                outcome=Outcome.BLOCKED,
                reason=decision.reason,
                root_cause=root_cause.label(decision.root_cause) or None,
                **common,
            )
        if decision.reason != policy.BlockReason.LOCK_HELD:  # the holder keeps the state
            life = ctx.tracker.life(tx.state, name)
            ctx.tracker.put(
                tx,
                name,
                life,
                decision.state,
                str(decision.reason),
                decision.detail,
                decision.root_cause,
            )
        return _refusal_report(name, probe, decision, chain)

    # -- blast radius ------------------------------------------------------------------------

    def _unhealthy_count(self, names: Sequence[str]) -> int:
        """Independent failures right now: the components down (probed in this run, or by
        their last known state) that no down dependency explains. A full disk that takes
        down what depends on it is one failure, which automation may still fix."""
        if facts.max_unhealthy(self.ctx) is None:
            return 0
        state = self.ctx.store.load_state()
        down: set[str] = set()
        for name in self.ctx.config.components:
            if name in names:
                healthy = self.ctx.components.probe(name).healthy
            else:
                healthy = self.ctx.tracker.life(state, name).state is LifeState.HEALTHY
            if not healthy:
                down.add(name)
        causes = root_cause.root_causes(self.ctx.config.dependency_graph(), down)
        return sum(1 for name, roots in causes.items() if roots == (name,))

    def _blast_radius_alert(self, tx: Transaction, unhealthy: int) -> None:
        limit = facts.max_unhealthy(self.ctx)
        ctx = self.ctx
        over = limit is not None and unhealthy > limit
        labels = (
            {
                "alertname": alerts.BLAST_RADIUS_ALERT,
                "host": ctx.env.host,
                "severity": "critical",
                "state": str(LifeState.BLOCKED),
                "reason": str(policy.BlockReason.BLAST_RADIUS),
            }
            if over
            else None
        )
        summary = f"{unhealthy} components unhealthy at once on {ctx.env.host} (max {limit})"
        held, messages = alerts.plan(
            tx.state.global_alert, labels, summary, ctx.config.alerting, ctx.store.now()
        )
        tx.state.global_alert = held
        ctx.outbox.add(messages)

    # -- dry run and the prompt ----------------------------------------------------------------

    def _dry_run(
        self, name: str, probe: ProbeResult, request: RecoverRequest, unhealthy: int
    ) -> ComponentReport:
        ctx = self.ctx
        if probe.healthy and not request.force:
            return ComponentReport(name, ExitCode.OK, "healthy", probe.health, None, probe.detail)
        order = self._chain(name, probe, request)
        chain = list(order.order)
        with ctx.store.component_lock(name) if not ctx.store.read_only else _NoLock() as lock:
            held = not lock.acquire(0)
        facts.probe_dependencies(ctx, name)  # before the transaction: no lock held
        with ctx.store.transaction(ctx.wait) as tx:
            life = observe(
                ctx.tracker.life(tx.state, name),
                probe.healthy,
                probe.failure_type,
                ctx.store.now(),
                ctx.config.thresholds(name),
            )
            asking = facts.Asking(lock_held=held, unhealthy=unhealthy)
            decision = facts.decide(ctx, tx, name, life, chain, request, asking)
        if decision.verdict not in (Verdict.ACT, Verdict.AWAIT):
            return _refusal_report(name, probe, decision, chain)
        steps = tuple(self._dry_step(name, s, probe.failure_type, request) for s in chain)
        return ComponentReport(
            name,
            # nothing was changed: an unhealthy component is still unhealthy (exit 1)
            ExitCode.OK if probe.healthy else ExitCode.UNHEALTHY,
            "dry_run",
            probe.health,
            probe.failure_type,
            "dry run: nothing was changed",
            steps=steps,
            plan=tuple(chain),
            chain_order=order.to_record(),
        )

    def _dry_step(
        self, name: str, strategy: str, failure_type: str | None, request: RecoverRequest
    ) -> StepReport:
        result = self.chain.call_strategy(name, strategy, failure_type, True, request)
        note = " (needs approval)" if self.ctx.config.needs_approval(name, strategy) else ""
        return StepReport(
            strategy, result.ok, False, result.detail + note, result.failure_type, 0.0, 1
        )

    def _maybe_prompt(self, report: ComponentReport, request: RecoverRequest) -> ComponentReport:
        """A person at a terminal is asked, with no lock held; a yes consumes the approval
        exactly as ``recovery approve ID`` does. No answer in time: it stays pending."""
        if (
            report.outcome != "awaiting_approval"
            or report.approval_id is None
            or self.prompt is None
            or not self.ctx.env.interactive
            or request.yes
        ):
            return report
        question = f"{report.component}: {report.detail}. Approve {report.approval_id}?"
        answer = self.prompt(question, request.prompt_timeout)
        if not answer:
            return report
        return self.approval_flow.approve(report.approval_id, request.operator, at_prompt=True)


def _refusal_report(
    name: str, probe: ProbeResult, decision: Decision, chain: Sequence[str]
) -> ComponentReport:
    outcome = {Verdict.SHADOW: "shadow", Verdict.HOLD: "held"}.get(decision.verdict, "blocked")
    code = ExitCode.UNHEALTHY if decision.verdict is Verdict.HOLD else ExitCode.BLOCKED
    return ComponentReport(
        name,
        code,
        outcome,
        probe.health,
        probe.failure_type,
        decision.detail,
        reason=str(decision.reason) if decision.reason else None,
        plan=tuple(chain),
        root_cause=decision.root_cause,
    )


class _NoLock:
    def __enter__(self) -> _NoLock:
        return self

    def acquire(self, wait: float) -> bool:
        return True

    def __exit__(self, *exc: object) -> None:
        return None
