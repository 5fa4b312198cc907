"""One function per subcommand: call the core library, render, return the exit code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from recovery_cli import render
from recovery_cli.errors import ExitCode, UsageError, worst
from recovery_cli.history import StatsRow
from recovery_cli.invocation import Session, handle_errors

if TYPE_CHECKING:
    from recovery_cli.orchestrator import Orchestrator
    from recovery_cli.run_context import RecoverRequest

MAX_PROMPT_TIMEOUT = 3600.0


def _orchestrator(session: Session, read_only: bool = False) -> Orchestrator:
    from recovery_cli.orchestrator import Orchestrator

    components = session.read_only_components if read_only else session.components
    store = session.store(read_only)
    return Orchestrator(session.config, store, session.env, components, render.ask)


def _trace_start(session: Session) -> str | None:
    """With --verbose: say which config and state dir are used; returns the run's start."""
    if not session.verbose:
        return None
    from recovery_cli.audit import format_ts

    render.err(f"config: {session.config_file}")
    render.err(f"state dir: {session.state_dir}")
    return format_ts(session.env.clock.now())


def _trace_records(session: Session, since: str | None) -> None:
    """With --verbose: every audit record this run wrote, oldest first, in full."""
    if since is None:
        return
    store = session.store(read_only=True)
    mine = [r for r in store.audit.read_back(since=since) if r.get("pid") == session.env.pid]
    for record in reversed(mine):
        fields = ("event", "component", "strategy", "outcome", "reason", "attempt_id", "detail")
        text = " ".join(f"{k}={record[k]}" for k in fields if record.get(k) not in (None, ""))
        render.err(f"audit {record['ts']} {text}")


@dataclass(frozen=True)
class RecoverOptions:
    names: tuple[str, ...] = ()
    strategy: str | None = None
    dry_run: bool = False
    yes: bool = False
    force: bool = False
    operator: str | None = None
    json_output: bool = False
    override_limits: bool = False
    reason: str | None = None
    prompt_timeout: float = 300.0


def recover(session: Session, options: RecoverOptions) -> int:
    with handle_errors(session, render.err):
        since = _trace_start(session)
        orchestrator = _orchestrator(session, read_only=options.dry_run)
        reports = orchestrator.recover(_recover_request(session, options))
        for warning in orchestrator.warnings:
            render.err(f"warning: {warning}")
        if options.json_output:
            render.print_json([r.to_json() for r in reports])
        else:
            render.recover_reports(reports)
        _trace_records(session, since)
        return int(worst([r.code for r in reports]))
    return int(ExitCode.INTERNAL)  # pragma: no cover - handle_errors always exits


def _recover_request(session: Session, options: RecoverOptions) -> RecoverRequest:
    """A person who names themselves (--as) acts as a person, whatever the terminal."""
    from recovery_cli.run_context import RecoverRequest

    if options.override_limits and not (options.reason or "").strip():
        raise UsageError("--override-limits needs --reason (it is recorded with your name)")
    if options.reason and not options.override_limits:
        raise UsageError("--reason goes with --override-limits")
    if not 0 < options.prompt_timeout <= MAX_PROMPT_TIMEOUT:
        raise UsageError(f"--prompt-timeout must be above 0 and at most {MAX_PROMPT_TIMEOUT:g}s")
    trigger = "manual" if options.operator else session.env.trigger
    return RecoverRequest(
        options.names,
        options.strategy,
        options.dry_run,
        options.yes,
        options.force,
        options.operator,
        trigger,
        options.reason if options.override_limits else None,
        options.prompt_timeout,
    )


def history(
    session: Session,
    component: str | None,
    last: str | None,
    since: str | None,
    until: str | None,
    outcome: str | None,
    strategy: str | None,
    event: str | None,
    limit: int,
    show_stats: bool,
    verify: bool,
    json_output: bool,
) -> int:
    from recovery_cli import history as hist

    with handle_errors(session, render.err):
        store = session.store(read_only=True)
        if verify:
            return _verify(store)
        if last and since:
            raise UsageError("use --last or --since, not both")
        now = store.now()
        window_start = last or since
        start = hist.parse_time(window_start, now) if window_start else None
        end = hist.parse_time(until, now) if until else None
        query = hist.HistoryQuery(
            component, start, end, outcome, strategy, event, None if show_stats else limit
        )
        if show_stats:
            rows = hist.stats(store.audit.read_forward(start), query)
            _emit_stats(rows, json_output)
        else:
            records = hist.query(store, query)
            render.print_json(records) if json_output else render.history_rows(records)
        if store.audit.stats.corrupt_lines:
            render.err(
                f"warning: skipped {store.audit.stats.corrupt_lines} torn or invalid audit line(s)"
            )
        return int(ExitCode.OK)
    return int(ExitCode.INTERNAL)  # pragma: no cover


def _emit_stats(rows: list[StatsRow], json_output: bool) -> None:
    if json_output:
        render.print_json([r.to_json() for r in rows])
        return
    render.table(
        ["component", "strategy", "failure", "runs", "ok", "success rate", "mean s"],
        [
            [
                r.component,
                r.strategy,
                r.failure_type,
                r.runs,
                r.successes,
                f"{r.success_rate:.0%}",
                r.mean_duration_s,
            ]
            for r in rows
        ],
    )


def _verify(store: object) -> int:
    from recovery_cli.store import Store

    assert isinstance(store, Store)
    problems = store.audit.verify(store.chain_head())
    for problem in problems:
        render.out(problem)
    render.err(
        "audit chain intact" if not problems else f"{len(problems)} problem(s) in the audit chain"
    )
    return int(ExitCode.UNHEALTHY if problems else ExitCode.OK)


def drill(session: Session, junit: Path | None, live: bool, json_output: bool) -> int:
    from recovery_cli.drill import junit_xml, run_drill

    with handle_errors(session, render.err):
        store = session.store()
        cases = run_drill(session.config, session.components, session.state_dir)
        with store.transaction(session.config.defaults.lock_wait_seconds) as tx:
            failed = [c for c in cases if not c.ok]
            tx.record(
                "drill",
                None,
                trigger="test",
                outcome="success" if not failed else "failed",
                detail=f"{len(cases) - len(failed)} passed, {len(failed)} failed",
            )
        if junit is not None:
            junit.write_bytes(junit_xml(cases))
        if json_output:
            render.print_json([c.__dict__ for c in cases])
        else:
            render.drill_cases(cases)
        code = ExitCode.UNHEALTHY if failed else ExitCode.OK
        if live and not failed:
            from recovery_cli.orchestrator import RecoverRequest

            request = RecoverRequest(force=True, trigger="test", yes=True)
            reports = _orchestrator(session).recover(request)
            render.recover_reports(reports)
            code = worst([r.code for r in reports])
        return int(code)
    return int(ExitCode.INTERNAL)  # pragma: no cover


def approve(
    session: Session,
    approval_id: str | None,
    reject: bool,
    reason: str | None,
    operator: str | None,
    json_output: bool,
) -> int:
    from recovery_cli import approvals

    with handle_errors(session, render.err):
        if approval_id is None:
            if reject:
                raise UsageError("--reject needs an approval ID")
            store = session.store(read_only=True)
            rows = approvals.pending(store.load_state(), store.now())
            render.print_json(rows) if json_output else render.approvals_rows(rows)
            return int(ExitCode.OK)
        since = _trace_start(session)
        orchestrator = _orchestrator(session)
        if reject:
            if not reason:
                raise UsageError("--reject needs --reason")
            closed = orchestrator.reject(approval_id, operator, reason)
            render.out(f"rejected {closed['id']} ({closed['component']}: {closed['strategy']})")
            return int(ExitCode.OK)
        report = orchestrator.approve(approval_id, operator)
        render.print_json([report.to_json()]) if json_output else render.recover_reports([report])
        _trace_records(session, since)
        return int(report.code)
    return int(ExitCode.INTERNAL)  # pragma: no cover


def disable(
    session: Session, component: str, duration: str, reason: str, operator: str | None
) -> int:
    from recovery_cli import controls
    from recovery_cli.audit import format_ts
    from recovery_cli.history import parse_duration

    with handle_errors(session, render.err):
        seconds = parse_duration(duration)
        until = controls.disable(
            session.config,
            session.store(),
            component,
            seconds,
            reason,
            session.env.operator(operator),
        )
        render.out(f"{component}: automatic recovery disabled until {format_ts(until)}")
        return int(ExitCode.OK)
    return int(ExitCode.INTERNAL)  # pragma: no cover


def enable(session: Session, component: str, operator: str | None) -> int:
    from recovery_cli import controls

    with handle_errors(session, render.err):
        lifted = controls.enable(
            session.config, session.store(), component, session.env.operator(operator)
        )
        render.out(f"{component}: enabled" if lifted else f"{component}: was not disabled")
        return int(ExitCode.OK)
    return int(ExitCode.INTERNAL)  # pragma: no cover


def status(session: Session, no_probe: bool, explain: bool, json_output: bool) -> int:
    from recovery_cli.status import component_status

    with handle_errors(session, render.err):
        rows = component_status(
            session.config,
            session.store(read_only=True),
            session.read_only_components,
            not no_probe,
        )
        if json_output:
            render.print_json([r.to_json() for r in rows])
        else:
            render.status_rows(rows, explain)
        unhealthy = any(r.health in ("down", "degraded") for r in rows)
        return int(ExitCode.UNHEALTHY if unhealthy else ExitCode.OK)
    return int(ExitCode.INTERNAL)  # pragma: no cover


def metrics(session: Session, json_output: bool, output: Path | None) -> int:
    from recovery_cli import metrics as prom

    with handle_errors(session, render.err):
        registry = prom.build_registry(session.config, session.store(read_only=True))
        if json_output:
            render.print_json(prom.as_json(registry))
        elif output is not None:
            prom.write_atomically(output, prom.exposition(registry), session.state_dir)
        else:
            render.out(prom.exposition(registry))
        return int(ExitCode.OK)
    return int(ExitCode.INTERNAL)  # pragma: no cover
