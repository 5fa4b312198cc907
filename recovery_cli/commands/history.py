"""``recovery history``: audit records newest first, statistics, and the chain check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer

from recovery_cli.commands.shared import JsonOpt, WideOpt, session_of, warn_backend

if TYPE_CHECKING:
    from recovery_cli.history import Analytics
    from recovery_cli.store import Store

StatsView = Literal["strategy", "component"]


def history(
    ctx: typer.Context,
    component: Annotated[
        list[str] | None,
        typer.Option("--component", "-c", metavar="NAME", help="A component (repeatable)."),
    ] = None,
    last: Annotated[
        str | None,
        typer.Option("--last", metavar="DURATION", help="Window ending now, e.g. 30m, 24h, 7d."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="TIME",
            help="Start: 2026-11-22, 2026-11-22T10:00Z or a duration ago.",
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="TIME", help="End, same forms as --since.")
    ] = None,
    outcome: Annotated[
        list[str] | None,
        typer.Option(
            "--outcome",
            metavar="OUTCOME",
            help="success, failed, blocked, started, ... (repeatable).",
        ),
    ] = None,
    strategy: Annotated[
        list[str] | None,
        typer.Option("--strategy", "-s", metavar="NAME", help="A strategy (repeatable)."),
    ] = None,
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event", metavar="EVENT", help="attempt, step, blocked, approved, ... (repeatable)."
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", min=1, help="At most this many records.")
    ] = 50,
    show_stats: Annotated[
        bool,
        typer.Option(
            "--stats",
            help="Success rate per component, strategy and failure type; incidents, MTTR and "
            "uptime per component.",
        ),
    ] = False,
    by: Annotated[
        StatsView | None,
        typer.Option(
            "--by",
            metavar="strategy|component",
            help="With --stats: only the rows per strategy (what --json gives without --by) "
            "or only those per component.",
        ),
    ] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Check the audit hash chain.")] = False,
    json_output: JsonOpt = False,
    wide: WideOpt = False,
) -> int:
    """Audit records, newest first."""
    from recovery_cli import history as hist
    from recovery_cli import render
    from recovery_cli.errors import UsageError

    store = session_of(ctx).store(read_only=True)
    warn_backend(store)
    if verify:
        return verify_chain(store, json_output)
    if last and since:
        raise UsageError("use --last or --since, not both")
    now = store.now()
    window_start = last or since
    start = hist.parse_time(window_start, now) if window_start else None
    end = hist.parse_time(until, now) if until else None
    if start and end and end < start:
        raise UsageError(f"--until {end} is before the window's start {start}")
    query = hist.HistoryQuery(
        tuple(component or ()),
        start,
        end,
        tuple(outcome or ()),
        tuple(strategy or ()),
        tuple(event or ()),
        None if show_stats else limit,
    )
    if by and not show_stats:
        raise UsageError("--by goes with --stats")
    if show_stats:
        emit_stats(hist.analytics_of(store, query), by, json_output, wide)
    else:
        records = hist.query(store, query)
        render.print_json(records) if json_output else render.history_rows(records, wide)
    if store.audit.stats.corrupt_lines:
        render.err(
            f"warning: skipped {store.audit.stats.corrupt_lines} torn or invalid audit line(s)"
        )
    return 0


def emit_stats(
    analytics: Analytics, by: StatsView | None, json_output: bool, wide: bool = False
) -> None:
    """A table per view (both without ``by``); JSON holds one view, the strategies' rows
    unless ``by`` asks for the components'."""
    from recovery_cli import render

    if json_output:
        rows = analytics.components if by == "component" else analytics.rows
        render.print_json([r.to_json() for r in rows])
        return
    if by != "component":
        render.stats_rows(analytics.rows, wide)
    if by is None:
        render.out("")
    if by != "strategy":
        render.outcome_rows(analytics.components, wide)


def verify_chain(store: Store, json_output: bool = False) -> int:
    """Every problem on stdout (or ``{"intact", "problems"}`` as JSON), a summary on stderr;
    exit 1 when the chain is broken."""
    from recovery_cli import render
    from recovery_cli.errors import ExitCode

    problems = store.audit.verify(store.chain_head())
    if json_output:
        render.print_json({"intact": not problems, "problems": problems})
    for problem in [] if json_output else problems:
        render.out(problem)
    render.err(
        "audit chain intact" if not problems else f"{len(problems)} problem(s) in the audit chain"
    )
    return int(ExitCode.UNHEALTHY if problems else ExitCode.OK)
