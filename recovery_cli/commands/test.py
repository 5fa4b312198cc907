"""``recovery test``: the CI drill; with --live, also each chain for real."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from recovery_cli.commands.shared import (
    JsonOpt,
    WideOpt,
    check_writable,
    orchestrator,
    session_of,
    warn_config,
    writing,
)

if TYPE_CHECKING:
    from recovery_cli.invocation import Session
    from recovery_cli.results import ComponentReport


def drill(
    ctx: typer.Context,
    junit: Annotated[
        Path | None, typer.Option("--junit", metavar="FILE", help="Write JUnit XML here.")
    ] = None,
    live: Annotated[
        bool, typer.Option("--live", help="Also run each chain for real (staging targets only).")
    ] = False,
    json_output: JsonOpt = False,
    wide: WideOpt = False,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="A service not on this host fails (CI on a full host)."),
    ] = False,
) -> int:
    """CI drill: validate the config and every strategy's preconditions; changes nothing."""
    from recovery_cli import render
    from recovery_cli.audit import Event
    from recovery_cli.drill import fail_skips, junit_xml, run_drill, summary
    from recovery_cli.errors import ExitCode, worst

    if junit is not None:
        check_writable("--junit", junit)
    session = session_of(ctx)
    warn_config(session)
    store = session.store()
    cases = run_drill(session.config, session.components, session.state_dir, store)
    if strict:
        cases = fail_skips(cases)
    failed = [c for c in cases if c.failed]
    with store.transaction(session.config.defaults.lock_wait_seconds) as tx:
        tx.record(
            Event.DRILL,
            None,
            trigger="test",
            outcome="success" if not failed else "failed",
            detail=summary(cases),
        )
    if junit is not None:
        with writing("--junit", junit):
            junit.write_bytes(junit_xml(cases))
    if not json_output:
        render.drill_cases(cases, wide)
    reports = live_runs(session) if live and not failed else []
    if json_output:
        checks = [c.__dict__ for c in cases]
        # with --live, one document: the checks, then what each live run did
        live_json = {"checks": checks, "live": [r.to_json() for r in reports]}
        render.print_json(live_json if live else checks)
    elif reports:
        render.recover_reports(reports, wide)
    if reports:
        return int(worst([r.code for r in reports]))
    return int(ExitCode.UNHEALTHY if failed else ExitCode.OK)


def live_runs(session: Session) -> list[ComponentReport]:
    """Each chain for real, healthy or not, its approvals given (staging targets only)."""
    from recovery_cli.run_context import RecoverRequest

    request = RecoverRequest(force=True, trigger="test", yes=True)
    return orchestrator(session).recover(request)
