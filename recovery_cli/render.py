"""Output: on a terminal, tables fitted to its width and coloured (Rich, imported only then);
piped, the plain form scripts parse; JSON on request. Data goes to stdout, diagnostics to
stderr."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from recovery_cli.handlers.util import format_ts, trim

if TYPE_CHECKING:
    from recovery_cli.approvals import Approval
    from recovery_cli.audit import Record
    from recovery_cli.drill import DrillCase
    from recovery_cli.history import StatsRow
    from recovery_cli.outcomes import ComponentOutcome
    from recovery_cli.results import ComponentReport
    from recovery_cli.status import ComponentStatus


_redact: Callable[[str], str] = str


def use_redactor(redact: Callable[[str], str]) -> None:
    """Everything printed passes through ``redact`` (secret values become ``***``)."""
    global _redact
    _redact = redact


# control characters other than newline and tab: a key name or a server's message could
# carry terminal escapes (recolour, retitle, hide text) into what an approver reads
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every control character shown as an escape (``\x1b``)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def err(line: str) -> None:
    _emit(sys.stderr, printable(_redact(line)) + "\n")


def out(text: str) -> None:
    text = printable(_redact(text))
    _emit(sys.stdout, text if text.endswith("\n") else text + "\n")


def _emit(stream: TextIO, text: str) -> None:
    """Write and flush; a reader that went away (``| head -1``) silences the stream
    instead of failing the command, so its exit code stays the real one."""
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:
        _discard(stream)


def _discard(stream: TextIO) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, stream.fileno())
    finally:
        os.close(devnull)


def print_json(data: Any) -> None:
    out(json.dumps(data, indent=2, default=str))


# --- the terminal -------------------------------------------------------------------------


def on_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (ValueError, AttributeError):  # closed or replaced stdout
        return False


def colour_allowed(environ: Mapping[str, str]) -> bool:
    """Colour unless ``NO_COLOR`` holds anything (no-color.org) or the terminal is dumb."""
    return not environ.get("NO_COLOR") and environ.get("TERM") != "dumb"


def terminal_width() -> int:
    """``COLUMNS`` when set (as ``ls`` and Rich read it), else the terminal's own width."""
    import shutil

    return max(shutil.get_terminal_size((80, 24)).columns, 20)


def prose(text: str, indent: str = "") -> None:
    """A line of text; on a terminal, wrapped to its width (continued under ``indent``)."""
    if not on_terminal():
        out(text)
        return
    import textwrap

    width = terminal_width()
    for line in text.splitlines() or [""]:
        out(textwrap.fill(line, width, subsequent_indent=indent + "  ") if line else "")


# --- times as people read them ------------------------------------------------------------


def iso(epoch: float) -> str:
    """ISO-8601 UTC to the second: ``2026-11-22T10:00:00Z``."""
    return format_ts(epoch)[:19] + "Z"


def span(seconds: float) -> str:
    """A duration as a person says it: ``45s``, ``4m40s``, ``2h05m``, ``3d4h``."""
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def relative(epoch: float, now: float) -> str:
    """``in 42m``, ``12m ago`` or ``now``."""
    delta = epoch - now
    if abs(delta) < 1:
        return "now"
    return f"in {span(delta)}" if delta > 0 else f"{span(-delta)} ago"


# an epoch a record's detail carries (``expires 1795000000``), written before times were ISO
_EPOCH_IN_TEXT = re.compile(r"\b(expires|until) (\d{10})(?:\.\d+)?\b")


def readable_times(text: str) -> str:
    """``text`` with every epoch it names as ISO-8601 UTC."""
    return _EPOCH_IN_TEXT.sub(lambda m: f"{m.group(1)} {iso(float(m.group(2)))}", text)


def _relative_form(now: float) -> Callable[[str], str]:
    """An ISO time as ``in 42m`` / ``3h ago``; anything else (``now``, ``-``) as it is."""
    from recovery_cli.audit import parse_ts

    def brief(text: str) -> str:
        try:
            return relative(parse_ts(text.replace("Z", "+00:00")), now)
        except ValueError:
            return text

    return brief


def _span_form(text: str) -> str:
    """``280s`` as ``4m40s``."""
    return span(int(text[:-1])) if text.endswith("s") and text[:-1].isdigit() else text


# --- colour -------------------------------------------------------------------------------

GREEN, YELLOW, RED, DIM = "green", "yellow", "red", "dim"
HEALTH_STYLES = {
    "healthy": GREEN,
    "degraded": YELLOW,
    "down": RED,
    "unhealthy": RED,
    "not probed": DIM,
    "unknown": DIM,
}
OUTCOME_STYLES = {
    "success": GREEN,
    "recovered": GREEN,
    "healthy": GREEN,
    "approved": GREEN,
    "pass": GREEN,
    "ok": GREEN,
    "yes": GREEN,
    "recovered_with_loss": YELLOW,
    "blocked": YELLOW,
    "pending": YELLOW,
    "awaiting_approval": YELLOW,
    "failed": RED,
    "FAIL": RED,
    "interrupted": RED,
    "unavailable": RED,
    "rejected": RED,
    "no": RED,
    "started": DIM,
    "skip": DIM,
    "shadow": DIM,
    "dry_run": DIM,
    "expired": DIM,
    "superseded": DIM,
    "not_needed": DIM,
}
STATE_STYLES = {
    "healthy": GREEN,
    "failing": YELLOW,
    "recovering": "cyan",
    "awaiting_approval": YELLOW,
    "blocked": YELLOW,
    "failed": RED,
    "escalated": "bold red",
    "disabled": DIM,
    "shadow": DIM,
}


def painted(*styles: Mapping[str, str]) -> Callable[[str], str | None]:
    """The style of a value by its word: ``blocked (cooldown)`` by ``blocked``, a
    transition ``failing -> recovering`` by where it went."""

    def style(text: str) -> str | None:
        word = text.rsplit(" -> ", 1)[-1].split(" (", 1)[0]
        return next((s[word] for s in styles if word in s), None)

    return style


def _rate_style(text: str) -> str | None:
    rate = int(text[:-1]) if text.endswith("%") and text[:-1].isdigit() else None
    if rate is None:
        return None
    return GREEN if rate >= 90 else YELLOW if rate >= 50 else RED


# --- tables -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A table column, and how it gives way on a narrow terminal: the least important
    (lowest ``rank``) go first, dropped unless ``keep``, abbreviated down to ``fold``."""

    header: str
    rank: int = 0
    keep: bool = False  # identifying or health: never dropped
    fold: int | None = None  # the narrowest an ellipsis may cut it to; None: never cut
    paint: Callable[[str], str | None] | None = None  # its Rich style by value
    brief: Callable[[str], str] | None = None  # its value's form in a fitted table


GAP = 2  # cells between two columns: a space of padding and the rule's gap


def table_width(widths: Sequence[int | None]) -> int:
    shown = [w for w in widths if w is not None]
    return sum(shown) + GAP * max(len(shown) - 1, 0)


def fit_widths(columns: Sequence[Column], natural: Sequence[int], width: int) -> list[int | None]:
    """Each column's width within ``width`` cells (``None``: dropped). Drop the least
    important until the rest fit abbreviated, then abbreviate the least important first."""
    order = sorted(range(len(columns)), key=lambda i: columns[i].rank)
    floor = [min(n, c.fold) if c.fold else n for c, n in zip(columns, natural, strict=True)]
    widths: list[int | None] = list(natural)
    for i in order:
        if (
            table_width([floor[j] if w is not None else None for j, w in enumerate(widths)])
            <= width
        ):
            break
        if not columns[i].keep:
            widths[i] = None
    excess = table_width(widths) - width
    # abbreviate down to each column's fold; on a terminal too narrow even for that,
    # further, down to one cell
    for lowest in (floor, [1] * len(columns)):
        for i in order:
            current = widths[i]
            if excess <= 0:
                return widths
            if current is not None:
                cut = min(excess, max(current - lowest[i], 0))
                widths[i] = current - cut
                excess -= cut
    return widths


def table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Any]],
    title: str | None = None,
    wide: bool = False,
) -> None:
    """Piped: every column in full (tabulate's ``simple`` form, which scripts parse).
    On a terminal: fitted to its width, or with ``wide`` every column in full."""
    cells = [["" if v is None else printable(trim(_redact(str(v)))) for v in row] for row in rows]
    if on_terminal():
        _terminal_table(columns, cells, title, wide)
        return
    from tabulate import tabulate

    if title:
        out(title)
    headers = [c.header for c in columns]
    out(tabulate(cells, headers=headers, tablefmt="simple") if cells else "(none)")


def _terminal_table(
    columns: Sequence[Column], cells: list[list[str]], title: str | None, wide: bool
) -> None:
    if not cells:
        out(f"{title}\n(none)" if title else "(none)")
        return
    from rich.cells import cell_len
    from rich.console import Console
    from rich.text import Text

    shown = [
        [_terminal_form(c, v, wide) for c, v in zip(columns, row, strict=True)] for row in cells
    ]
    natural = [
        max([cell_len(c.header), *(cell_len(row[i]) for row in shown)])
        for i, c in enumerate(columns)
    ]
    width = terminal_width()
    widths: list[int | None] = list(natural) if wide else fit_widths(columns, natural, width)
    console = Console(
        width=max(width, table_width(widths)),
        color_system="auto" if colour_allowed(os.environ) else None,
        highlight=False,
        soft_wrap=False,
    )
    try:
        console.print(_rich_grid(columns, shown, widths, title))
        hidden = [c.header for c, w in zip(columns, widths, strict=True) if w is None]
        if hidden:
            note = f"--wide shows {len(hidden)} more column(s): {', '.join(hidden)}"
            console.print(Text(note, style=DIM), width=width)
    except BrokenPipeError:
        _discard(sys.stdout)


def _rich_grid(
    columns: Sequence[Column], rows: list[list[str]], widths: list[int | None], title: str | None
) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    grid = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        header_style="bold",
        title=Text(title) if title else None,
        title_justify="left",
        title_style="bold",
    )
    shown = [i for i, w in enumerate(widths) if w is not None]
    for i in shown:
        grid.add_column(Text(columns[i].header), width=widths[i], no_wrap=True, overflow="ellipsis")
    for row in rows:
        # text as it is, never Rich markup
        grid.add_row(*(Text(row[i], style=_style(columns[i], row[i])) for i in shown))
    return grid


def _style(column: Column, value: str) -> str:
    return (column.paint(value) if column.paint else None) or ""


def _terminal_form(column: Column, value: str, wide: bool) -> str:
    """A fitted table's cell in its brief form (``in 42m``); ``--wide`` keeps the value."""
    return _one_line(column.brief(value) if column.brief and not wide else value)


def _one_line(text: str) -> str:
    """A cell on one line: a newline or tab in a detail would otherwise break the row."""
    return " ".join(text.split())


# --- what each command shows --------------------------------------------------------------

REPORT_COLUMNS = (
    Column("component", rank=100, keep=True, fold=16),
    Column("outcome", rank=95, keep=True, fold=12, paint=painted(OUTCOME_STYLES)),
    Column("health", rank=90, keep=True, paint=painted(HEALTH_STYLES)),
    Column("failure", rank=40, fold=12),
    Column("reason", rank=50, fold=10),
    Column("detail", rank=30, fold=16),
)
STEP_COLUMNS = (
    Column("component", rank=95, keep=True, fold=16),
    Column("step", rank=100, keep=True, fold=12),
    Column("result", rank=90, keep=True, paint=painted(OUTCOME_STYLES)),
    Column("healthy after", rank=60, paint=painted(OUTCOME_STYLES)),
    Column("tries", rank=20),
    Column("took", rank=25),
    Column("detail", rank=30, fold=16),
)


def recover_reports(reports: Sequence[ComponentReport], wide: bool = False) -> None:
    rows = [
        [r.component, r.outcome, r.health, r.failure_type or "", r.reason or "", r.detail]
        for r in reports
    ]
    table(REPORT_COLUMNS, rows, wide=wide)
    steps = [
        [
            r.component,
            s.strategy,
            "ok" if s.ok else "failed",
            "yes" if s.healthy_after else "no",
            s.tries,
            f"{s.duration_s:.2f}s",
            s.detail,
        ]
        for r in reports
        for s in r.steps
    ]
    if steps:
        table(STEP_COLUMNS, steps, title="steps", wide=wide)
    _dry_run_orders(reports)


def _dry_run_orders(reports: Sequence[ComponentReport]) -> None:
    """A dry run's adaptive chain order and the numbers behind it, per component (a
    configured order is the steps table's)."""
    from recovery_cli.chain_order import explain

    for r in reports:
        if r.outcome == "dry_run" and r.chain_order and r.chain_order["mode"] == "adaptive":
            out(f"\n{r.component}:")
            for line in explain(r.chain_order):
                prose(f"  {line}", "    ")


def _status_columns(now: float) -> tuple[Column, ...]:
    when = _relative_form(now)
    return (
        Column("component", rank=100, keep=True, fold=20),
        Column("kind", rank=10, fold=8),
        Column("health", rank=95, keep=True, fold=10, paint=painted(HEALTH_STYLES)),
        Column("state", rank=90, keep=True, fold=17, paint=painted(STATE_STYLES)),
        Column("failure", rank=20, fold=12),
        Column("root cause", rank=55, fold=12),
        Column("attempts/h", rank=60),
        Column("cooldown", rank=50, brief=_span_form),
        Column("disabled until", rank=40, brief=when),
        Column("degraded", rank=30, fold=10),
        Column("approvals", rank=45, fold=10),
        Column("next attempt", rank=70, brief=when),
    )


def status_rows(
    rows: Sequence[ComponentStatus], explain: bool, now: float, wide: bool = False
) -> None:
    table(_status_columns(now), [_status_row(r) for r in rows], wide=wide)
    if explain:
        for r in rows:
            out(f"\n{r.component}:")
            since = f" since {r.state_since}" if r.state_since else ""
            prose(f"  state: {r.state}{since} ({r.state_reason or '-'}); next: {r.next_step}", "  ")
            for line in r.explain:
                prose(f"  {line}", "  ")


def _status_row(r: ComponentStatus) -> list[str]:
    return [
        r.component,
        r.kind + ("" if r.handler == "available" else " (no handler)"),
        r.health + (f" ({', '.join(r.marks)})" if r.marks else ""),
        r.state + (f" ({r.state_reason})" if r.state_reason else ""),
        r.failure_type or "",
        _root_cell(r),
        f"{r.attempts_last_hour}/{r.hourly_cap}",
        f"{r.cooldown_left_s}s" if r.cooldown_left_s else "-",
        r.disabled_until or "-",
        ",".join(r.degraded_modes) or "-",
        ",".join(r.pending_approvals) or "-",
        r.next_allowed,
    ]


def _root_cell(r: ComponentStatus) -> str:
    """A root names what it explains; a component a down dependency explains names its root."""
    if r.root_of:
        return "root of " + ", ".join(r.root_of)
    return ", ".join(r.root_cause) or "-"


HISTORY_COLUMNS = (
    Column("ts", rank=100, keep=True),
    Column("event", rank=80, keep=True, fold=13),
    Column("component", rank=95, keep=True, fold=16),
    Column("strategy", rank=60, fold=12),
    Column(
        "outcome",
        rank=90,
        keep=True,
        fold=12,
        paint=painted(OUTCOME_STYLES, STATE_STYLES),
        brief=lambda text: "-> " + text.rsplit(" -> ", 1)[1] if " -> " in text else text,
    ),
    Column("trigger", rank=10),
    Column("operator", rank=20, fold=8),
    Column("detail", rank=30, fold=16),
)


def history_rows(records: Sequence[Record], wide: bool = False) -> None:
    table(
        HISTORY_COLUMNS,
        [
            [
                r.get("ts", "")[:19].replace("T", " "),
                r.get("event"),
                r.get("component"),
                r.get("strategy"),
                _what(r),
                r.get("trigger"),
                r.get("operator"),
                readable_times(str(r.get("detail") or ""))[:120],
            ]
            for r in records
        ],
        wide=wide,
    )


def _what(record: Record) -> object:
    from recovery_cli.audit import Event

    if record.get("event") == Event.STATE_CHANGED:
        return f"{record.get('from_state')} -> {record.get('to_state')}"
    return record.get("outcome") or record.get("reason")


STATS_COLUMNS = (
    Column("component", rank=100, keep=True, fold=16),
    Column("strategy", rank=90, keep=True, fold=12),
    Column("failure", rank=50, fold=12),
    Column("runs", rank=70),
    Column("ok", rank=60),
    Column("success rate", rank=95, keep=True, paint=_rate_style),
    Column("95% interval", rank=45),
    Column("mean s", rank=40),
    Column("median s", rank=30),
)


def stats_rows(rows: Sequence[StatsRow], wide: bool = False) -> None:
    table(
        STATS_COLUMNS,
        [
            [
                r.component,
                r.strategy,
                r.failure_type,
                r.runs,
                r.successes,
                f"{r.success_rate:.0%}",
                f"{r.rate_low:.0%}-{r.rate_high:.0%}",
                r.mean_duration_s,
                r.median_duration_s,
            ]
            for r in rows
        ],
        wide=wide,
    )


OUTCOME_COLUMNS = (
    Column("component", rank=100, keep=True, fold=16),
    Column("incidents", rank=90, keep=True),
    Column("recovered", rank=50),
    Column("open", rank=60),
    Column("MTTR", rank=95, keep=True),
    Column("median", rank=40),
    Column("p90", rank=45),
    Column("uptime", rank=97, keep=True),
    Column("observed", rank=30),
)


def outcome_rows(rows: Sequence[ComponentOutcome], wide: bool = False) -> None:
    """Each component's incidents, time to recover and uptime."""
    table(
        OUTCOME_COLUMNS,
        [
            [
                r.component,
                r.incidents,
                r.recovered,
                r.open,
                _span_or_dash(r.mttr_s),
                _span_or_dash(r.median_ttr_s),
                _span_or_dash(r.p90_ttr_s),
                "-" if r.uptime_pct is None else f"{r.uptime_pct:.3f}%",
                span(r.observed_s),
            ]
            for r in rows
        ],
        title="components",
        wide=wide,
    )


def _span_or_dash(seconds: float | None) -> str:
    return "-" if seconds is None else span(seconds)


DRILL_COLUMNS = (
    Column("component", rank=90, keep=True, fold=16),
    Column("check", rank=100, keep=True, fold=20),
    Column("result", rank=95, keep=True, paint=painted(OUTCOME_STYLES)),
    Column("detail", rank=10, fold=16),
)


def drill_cases(cases: Sequence[DrillCase], wide: bool = False) -> None:
    table(
        DRILL_COLUMNS,
        [[c.component, c.name, _drill_result(c), c.detail] for c in cases],
        wide=wide,
    )
    failed = sum(c.failed for c in cases)
    skipped = sum(c.skipped for c in cases)
    out(f"{len(cases) - failed - skipped} passed, {skipped} skipped, {failed} failed")


def _drill_result(case: DrillCase) -> str:
    return "skip" if case.skipped else "pass" if case.ok else "FAIL"


def _approval_columns(now: float) -> tuple[Column, ...]:
    when = _relative_form(now)
    return (
        Column("id", rank=100, keep=True),
        Column("component", rank=95, keep=True, fold=16),
        Column("strategy", rank=90, keep=True, fold=12),
        Column("failure", rank=40, fold=12),
        Column("requested", rank=30, brief=when),
        Column("expires", rank=70, brief=when),
        Column("plan", rank=20),
        Column("would lose", rank=50, fold=10),
    )


def approvals_rows(rows: Sequence[Approval], now: float, wide: bool = False) -> None:
    table(
        _approval_columns(now),
        [
            [
                a.id,
                a.component,
                a.strategy,
                a.failure_type,
                format_ts(a.created)[:19],
                format_ts(a.expires)[:19],
                a.plan_hash,
                _would_lose(a),
            ]
            for a in rows
        ],
        wide=wide,
    )
    for a in rows:
        if a.plan and a.plan.get("detail"):
            prose(f"{a.id}: {a.plan['detail']}")


def _would_lose(approval: Approval) -> str:
    loss = approval.would_lose
    if loss is None:
        return "-"
    return "nothing" if loss.get("count") == 0 else str(loss.get("summary"))


def disabled(component: str, until: float, now: float) -> None:
    """What ``disable`` did: the plain line scripts know; on a terminal, the time also as
    a span, and the line wrapped to the terminal's width."""
    if not on_terminal():
        out(f"{component}: automatic recovery disabled until {format_ts(until)}")
        return
    prose(f"{component}: automatic recovery disabled until {iso(until)} ({relative(until, now)})")


def ask(question: str, timeout: float) -> bool | None:
    """y/N at the terminal; ``None`` when nobody answered within ``timeout`` seconds."""
    import select

    sys.stderr.write(f"{_redact(question)} [y/N] (waiting {timeout:g}s) ")
    sys.stderr.flush()
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if not ready:
        err("\nno answer: the approval stays pending")
        return None
    return sys.stdin.readline().strip().lower() in ("y", "yes")
