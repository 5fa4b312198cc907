"""Output: Rich tables on a terminal, plain text otherwise, JSON on request.
Data goes to stdout, diagnostics to stderr."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from recovery_cli.handlers.util import format_ts, trim

if TYPE_CHECKING:
    from recovery_cli.approvals import Approval
    from recovery_cli.audit import Record
    from recovery_cli.drill import DrillCase
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


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    cells = [["" if v is None else printable(trim(_redact(str(v)))) for v in row] for row in rows]
    if sys.stdout.isatty():
        _rich_table(headers, cells, title)
        return
    from tabulate import tabulate

    if title:
        out(title)
    out(tabulate(cells, headers=list(headers), tablefmt="simple") if cells else "(none)")


def _rich_table(headers: Sequence[str], rows: list[list[str]], title: str | None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    grid = Table(title=title, show_lines=False)
    for header in headers:
        grid.add_column(header, overflow="fold")
    for row in rows:
        grid.add_row(*(Text(cell) for cell in row))  # text as it is, never Rich markup
    try:
        Console().print(grid)
    except BrokenPipeError:
        _discard(sys.stdout)


def recover_reports(reports: Sequence[ComponentReport]) -> None:
    rows = [
        [r.component, r.outcome, r.health, r.failure_type or "", r.reason or "", r.detail]
        for r in reports
    ]
    table(["component", "outcome", "health", "failure", "reason", "detail"], rows)
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
        table(
            ["component", "step", "result", "healthy after", "tries", "took", "detail"],
            steps,
            title="steps",
        )


def status_rows(rows: Sequence[ComponentStatus], explain: bool) -> None:
    table(
        [
            "component",
            "kind",
            "health",
            "state",
            "failure",
            "attempts/h",
            "cooldown",
            "disabled until",
            "degraded",
            "approvals",
            "next attempt",
        ],
        [
            [
                r.component,
                r.kind + ("" if r.handler == "available" else " (no handler)"),
                r.health + (f" ({', '.join(r.marks)})" if r.marks else ""),
                r.state + (f" ({r.state_reason})" if r.state_reason else ""),
                r.failure_type,
                f"{r.attempts_last_hour}/{r.hourly_cap}",
                f"{r.cooldown_left_s}s" if r.cooldown_left_s else "-",
                r.disabled_until or "-",
                ",".join(r.degraded_modes) or "-",
                ",".join(r.pending_approvals) or "-",
                r.next_allowed,
            ]
            for r in rows
        ],
    )
    if explain:
        for r in rows:
            out(f"\n{r.component}:")
            since = f" since {r.state_since}" if r.state_since else ""
            out(f"  state: {r.state}{since} ({r.state_reason or '-'}); next: {r.next_step}")
            for line in r.explain:
                out(f"  {line}")


def history_rows(records: Sequence[Record]) -> None:
    table(
        ["ts", "event", "component", "strategy", "outcome", "trigger", "operator", "detail"],
        [
            [
                r.get("ts", "")[:19].replace("T", " "),
                r.get("event"),
                r.get("component"),
                r.get("strategy"),
                _what(r),
                r.get("trigger"),
                r.get("operator"),
                str(r.get("detail") or "")[:120],
            ]
            for r in records
        ],
    )


def _what(record: Record) -> object:
    from recovery_cli.audit import Event

    if record.get("event") == Event.STATE_CHANGED:
        return f"{record.get('from_state')} -> {record.get('to_state')}"
    return record.get("outcome") or record.get("reason")


def drill_cases(cases: Sequence[DrillCase]) -> None:
    table(
        ["component", "check", "result", "detail"],
        [[c.component, c.name, _drill_result(c), c.detail] for c in cases],
    )
    failed = sum(c.failed for c in cases)
    skipped = sum(c.skipped for c in cases)
    out(f"{len(cases) - failed - skipped} passed, {skipped} skipped, {failed} failed")


def _drill_result(case: DrillCase) -> str:
    return "skip" if case.skipped else "pass" if case.ok else "FAIL"


def approvals_rows(rows: Sequence[Approval]) -> None:
    table(
        ["id", "component", "strategy", "failure", "requested", "expires", "plan", "would lose"],
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
    )
    for a in rows:
        if a.plan and a.plan.get("detail"):
            out(f"{a.id}: {a.plan['detail']}")


def _would_lose(approval: Approval) -> str:
    loss = approval.would_lose
    if loss is None:
        return "-"
    return "nothing" if loss.get("count") == 0 else str(loss.get("summary"))


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
