"""The one bound on what reaches the audit trail or a table: texts trimmed with ``trim``,
collections cut to a fixed number of items, nesting cut at a fixed depth."""

from __future__ import annotations

from typing import Any

from recovery_cli.handlers.util import DETAIL_LIMIT, trim

MAX_ITEMS = 100
MAX_DEPTH = 6


def bounded(value: Any, depth: int = 0) -> Any:
    """``value`` with every string trimmed, every list and mapping cut to ``MAX_ITEMS``
    (a marker says how many were left out) and nesting cut at ``MAX_DEPTH``."""
    if isinstance(value, str):
        return trim(value, DETAIL_LIMIT) if len(value) > DETAIL_LIMIT else value
    if isinstance(value, bool | int | float) or value is None:
        return value
    if depth >= MAX_DEPTH:
        return trim(str(value))
    if isinstance(value, dict):
        items = list(value.items())
        out = {trim(str(k), 200): bounded(v, depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            out["…"] = f"{len(items) - MAX_ITEMS} more left out"
        return out
    if isinstance(value, list | tuple | set | frozenset):
        seq = list(value)
        kept = [bounded(v, depth + 1) for v in seq[:MAX_ITEMS]]
        if len(seq) > MAX_ITEMS:
            kept.append(f"… {len(seq) - MAX_ITEMS} more left out")
        return kept
    return trim(str(value))
