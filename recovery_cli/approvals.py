"""Pending approvals: created by a step that needs a human, consumed once by ``approve``.

An approval is bound to a plan hash (component, strategy, params, failure type): approving
a plan that no longer matches what the component needs is refused."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recovery_cli.audit import format_ts, new_id
from recovery_cli.errors import ExitCode, RecoveryError, UsageError
from recovery_cli.state_file import State

PENDING = "pending"
MIN_PREFIX = 4
ID_SHAPE = re.compile(r"^[0-9a-f]{1,32}$")


class ApprovalRefused(RecoveryError):
    exit_code = ExitCode.BLOCKED


def plan_hash(
    component: str, strategy: str, params: Mapping[str, Any], failure_type: str | None
) -> str:
    plan = {
        "component": component,
        "strategy": strategy,
        "params": params,
        "failure_type": failure_type,
    }
    return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Request:
    component: str
    strategy: str
    params: Mapping[str, Any]
    failure_type: str | None
    attempt_id: str | None


def expire_old(state: State, now: float) -> list[dict[str, Any]]:
    expired = []
    for approval in state.approvals.values():
        if approval["status"] == PENDING and approval["expires"] <= now:
            approval["status"] = "expired"
            expired.append(approval)
    return expired


def request(
    state: State, req: Request, now: float, ttl: int, requested_by: str
) -> tuple[dict[str, Any], bool]:
    """The pending approval for this plan, reused if one exists; returns (approval, created).

    A pending approval for the same component and strategy but another plan is superseded,
    so there is never more than one pending approval per component and strategy."""
    digest = plan_hash(req.component, req.strategy, req.params, req.failure_type)
    for approval in state.approvals.values():
        if approval["status"] != PENDING or (approval["component"], approval["strategy"]) != (
            req.component,
            req.strategy,
        ):
            continue
        if approval["plan_hash"] == digest and approval["expires"] > now:
            return approval, False
        approval["status"] = "superseded"
    approval = {
        "id": _unique_id(state),
        "component": req.component,
        "strategy": req.strategy,
        "params": dict(req.params),
        "failure_type": req.failure_type,
        "plan_hash": digest,
        "status": PENDING,
        "created": now,
        "created_ts": format_ts(now),
        "expires": now + ttl,
        "requested_by": requested_by,
        "attempt_id": req.attempt_id,
    }
    state.approvals[approval["id"]] = approval
    return approval, True


def find(state: State, prefix: str) -> dict[str, Any]:
    prefix = prefix.strip().lower()
    if not ID_SHAPE.match(prefix):  # never echo what may be anything (a pasted secret)
        raise UsageError("an approval id is hexadecimal (see `recovery approve` for the list)")
    if len(prefix) < MIN_PREFIX:
        raise UsageError(
            f"approval id {prefix!r} is too short: give at least {MIN_PREFIX} characters"
        )
    matches = [a for a in state.approvals.values() if a["id"].startswith(prefix)]
    if not matches:
        raise UsageError(f"no approval with id {prefix!r} (see `recovery approve` for the list)")
    if len(matches) > 1:
        raise UsageError(
            f"approval id {prefix!r} is ambiguous: {', '.join(a['id'] for a in matches)}"
        )
    return matches[0]


def check_usable(approval: Mapping[str, Any], now: float) -> None:
    status = approval["status"]
    if status in (PENDING, "expired") and approval["expires"] <= now:
        raise ApprovalRefused(
            f"approval {approval['id']} expired at {format_ts(approval['expires'])}; "
            f"run `recovery recover {approval['component']}` for a fresh one"
        )
    if status != PENDING:
        raise ApprovalRefused(
            f"approval {approval['id']} is {status}, not pending; approvals are single-use"
        )


def pending(state: State, now: float) -> list[dict[str, Any]]:
    rows = [a for a in state.approvals.values() if a["status"] == PENDING and a["expires"] > now]
    return sorted(rows, key=lambda a: a["created"])


def prune_closed(state: State, now: float, keep_seconds: float = 7 * 86400) -> None:
    """Closed approvals stay in the audit trail; the state file keeps only a week of them."""
    for key in [
        k
        for k, a in state.approvals.items()
        if a["status"] != PENDING and a["created"] < now - keep_seconds
    ]:
        del state.approvals[key]


def _unique_id(state: State) -> str:
    while True:
        candidate = new_id()[:8]
        if not any(existing.startswith(candidate[:MIN_PREFIX]) for existing in state.approvals):
            return candidate
