"""``recovery test``: the CI drill; with --live, also each chain for real."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recovery_cli.commands.shared import JsonOpt, orchestrator, session_of, warn_config


def drill(
    ctx: typer.Context,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.")] = None,
    live: Annotated[
        bool, typer.Option("--live", help="Also run each chain for real (staging targets only).")
    ] = False,
    json_output: JsonOpt = False,
) -> int:
    """CI drill: validate the config and every strategy's preconditions; changes nothing."""
    from recovery_cli import render
    from recovery_cli.audit import Event
    from recovery_cli.drill import junit_xml, run_drill
    from recovery_cli.errors import ExitCode, worst

    session = session_of(ctx)
    warn_config(session)
    store = session.store()
    cases = run_drill(session.config, session.components, session.state_dir, store)
    failed = [c for c in cases if c.failed]
    skipped = sum(c.skipped for c in cases)
    with store.transaction(session.config.defaults.lock_wait_seconds) as tx:
        tx.record(
            Event.DRILL,
            None,
            trigger="test",
            outcome="success" if not failed else "failed",
            detail=f"{len(cases) - len(failed) - skipped} passed, {skipped} skipped, "
            f"{len(failed)} failed",
        )
    if junit is not None:
        junit.write_bytes(junit_xml(cases))
    if json_output:
        render.print_json([c.__dict__ for c in cases])
    else:
        render.drill_cases(cases)
    code = ExitCode.UNHEALTHY if failed else ExitCode.OK
    if live and not failed:
        from recovery_cli.run_context import RecoverRequest

        request = RecoverRequest(force=True, trigger="test", yes=True)
        reports = orchestrator(session).recover(request)
        render.recover_reports(reports)
        code = worst([r.code for r in reports])
    return int(code)
