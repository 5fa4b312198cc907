"""Pending approvals: created by a step that needs a human, consumed once by ``approve``.

An approval is bound to a plan hash (component, its settings, strategy, params, failure type,
and what the step would discard: its dry run's ``would_lose``): approving a plan that no
longer matches what the component needs, or that would now discard something else, is
refused."""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recovery_cli.audit import new_id
from recovery_cli.errors import ExitCode, RecoveryError, UsageError
from recovery_cli.handlers.util import format_ts
from recovery_cli.limits import bounded

if TYPE_CHECKING:
    from recovery_cli.state_file import State

MIN_PREFIX = 4
ID_SHAPE = re.compile(r"^[0-9a-f]{1,32}$")


class ApprovalRefused(RecoveryError):
    exit_code = ExitCode.BLOCKED


class ApprovalStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"  # consumed: its step ran
    REJECTED = "rejected"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"  # another plan was asked for, or the plan changed
    NOT_NEEDED = "not_needed"  # the component was healthy by the time it was approved


@dataclass
class Approval:
    """One approval, as the state file keeps it. Mutable: a transaction closes it in place."""

    id: str
    component: str
    strategy: str
    plan_hash: str
    status: ApprovalStatus
    created: float
    expires: float
    params: dict[str, Any] = field(default_factory=dict)
    failure_type: str | None = None
    requested_by: str | None = None
    attempt_id: str | None = None
    notified: float | None = None  # when the last ``still_waiting`` was recorded
    approved_by: str | None = None
    approved_at: float | None = None
    closed_by: str | None = None
    closed_at: float | None = None
    # the step's dry run when it was asked for: ``detail`` and ``would_lose``
    plan: dict[str, Any] | None = None

    @property
    def would_lose(self) -> dict[str, Any] | None:
        loss = (self.plan or {}).get("would_lose")
        return loss if isinstance(loss, dict) else None

    @property
    def last_notice(self) -> float:
        """When people were last told it waits: its request, or the last ``still_waiting``."""
        return self.created if self.notified is None else self.notified

    def to_json(self) -> dict[str, Any]:
        """The state file's entry, and a row of ``approve --json``: keys sorted (the order
        the file, written with ``sort_keys``, has always given them); what a later step
        adds only once it happened."""
        entry: dict[str, Any] = {
            "id": self.id,
            "component": self.component,
            "strategy": self.strategy,
            "params": self.params,
            "failure_type": self.failure_type,
            "plan_hash": self.plan_hash,
            "status": str(self.status),
            "created": self.created,
            "created_ts": format_ts(self.created),
            "expires": self.expires,
            "requested_by": self.requested_by,
            "attempt_id": self.attempt_id,
        }
        later = {
            "notified": self.notified,
            "approved_by": self.approved_by,
            "approved_at": self.approved_at,
            "closed_by": self.closed_by,
            "closed_at": self.closed_at,
            "plan": self.plan,
        }
        entry.update((k, v) for k, v in later.items() if v is not None)
        return dict(sorted(entry.items()))

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> Approval:
        """An entry ``state_file`` has checked: every required field there, each of its type."""
        return cls(
            id=entry["id"],
            component=entry["component"],
            strategy=entry["strategy"],
            plan_hash=entry["plan_hash"],
            status=ApprovalStatus(entry["status"]),
            created=entry["created"],
            expires=entry["expires"],
            params=dict(entry.get("params") or {}),
            failure_type=entry.get("failure_type"),
            requested_by=entry.get("requested_by"),
            attempt_id=entry.get("attempt_id"),
            notified=entry.get("notified"),
            approved_by=entry.get("approved_by"),
            approved_at=entry.get("approved_at"),
            closed_by=entry.get("closed_by"),
            closed_at=entry.get("closed_at"),
            # what a hand-edited state file holds here is cut to the audit's bounds, so the
            # next save (and the redaction before it) can always write it back
            plan=bounded(entry["plan"]) if isinstance(entry.get("plan"), dict) else None,
        )


def plan_hash(
    component: str,
    strategy: str,
    params: Mapping[str, Any],
    failure_type: str | None,
    would_lose: Mapping[str, Any] | None = None,
    target: Mapping[str, Any] | None = None,
) -> str:
    """``target``: the component's settings (which server, which database, which files),
    so a plan approved for one target never runs against another."""
    plan: dict[str, Any] = {
        "component": component,
        "strategy": strategy,
        "params": params,
        "failure_type": failure_type,
    }
    if would_lose is not None:
        plan["would_lose"] = would_lose.get("binds", would_lose)
    if target is not None:
        plan["target"] = target
    return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Request:
    component: str
    strategy: str
    params: Mapping[str, Any]
    failure_type: str | None
    attempt_id: str | None
    plan: Mapping[str, Any] | None = None  # the step's dry run: detail, would_lose
    target: Mapping[str, Any] | None = None  # the component's settings

    @property
    def would_lose(self) -> Mapping[str, Any] | None:
        loss = (self.plan or {}).get("would_lose")
        return loss if isinstance(loss, Mapping) else None

    def digest(self) -> str:
        return plan_hash(
            self.component,
            self.strategy,
            self.params,
            self.failure_type,
            self.would_lose,
            self.target,
        )


def expire_old(state: State, now: float) -> list[Approval]:
    expired = []
    for approval in state.approvals.values():
        if approval.status is ApprovalStatus.PENDING and approval.expires <= now:
            approval.status = ApprovalStatus.EXPIRED
            expired.append(approval)
    return expired


def request(
    state: State, req: Request, now: float, ttl: int, requested_by: str
) -> tuple[Approval, bool]:
    """The pending approval for this plan, reused if one exists; returns (approval, created).

    A pending approval for the same component and strategy but another plan is superseded,
    so there is never more than one pending approval per component and strategy."""
    digest = req.digest()
    for approval in state.approvals.values():
        same_step = (approval.component, approval.strategy) == (req.component, req.strategy)
        if approval.status is not ApprovalStatus.PENDING or not same_step:
            continue
        if approval.plan_hash == digest and approval.expires > now:
            return approval, False
        approval.status = ApprovalStatus.SUPERSEDED
    approval = Approval(
        id=_unique_id(state),
        component=req.component,
        strategy=req.strategy,
        plan_hash=digest,
        status=ApprovalStatus.PENDING,
        created=now,
        expires=now + ttl,
        params=dict(req.params),
        failure_type=req.failure_type,
        requested_by=requested_by,
        attempt_id=req.attempt_id,
        plan=dict(req.plan) if req.plan is not None else None,
    )
    state.approvals[approval.id] = approval
    return approval, True


def find(state: State, prefix: str) -> Approval:
    prefix = prefix.strip().lower()
    if not ID_SHAPE.match(prefix):  # never echo what may be anything (a pasted secret)
        raise UsageError("an approval id is hexadecimal (see `recovery approve` for the list)")
    if len(prefix) < MIN_PREFIX:
        raise UsageError(
            f"approval id {prefix!r} is too short: give at least {MIN_PREFIX} characters"
        )
    matches = [a for a in state.approvals.values() if a.id.startswith(prefix)]
    if not matches:
        raise UsageError(f"no approval with id {prefix!r} (see `recovery approve` for the list)")
    if len(matches) > 1:
        raise UsageError(f"approval id {prefix!r} is ambiguous: {', '.join(a.id for a in matches)}")
    return matches[0]


def check_usable(approval: Approval, now: float) -> None:
    status = approval.status
    if status in (ApprovalStatus.PENDING, ApprovalStatus.EXPIRED) and approval.expires <= now:
        raise ApprovalRefused(
            f"approval {approval.id} expired at {format_ts(approval.expires)}; "
            f"run `recovery recover {approval.component}` for a fresh one"
        )
    if status is not ApprovalStatus.PENDING:
        raise ApprovalRefused(
            f"approval {approval.id} is {status}, not pending; approvals are single-use"
        )


def pending(state: State, now: float) -> list[Approval]:
    rows = [
        a
        for a in state.approvals.values()
        if a.status is ApprovalStatus.PENDING and a.expires > now
    ]
    return sorted(rows, key=lambda a: a.created)


def prune_closed(state: State, now: float, keep_seconds: float = 7 * 86400) -> None:
    """Closed approvals stay in the audit trail; the state file keeps only a week of them."""
    for key in [
        k
        for k, a in state.approvals.items()
        if a.status is not ApprovalStatus.PENDING and a.created < now - keep_seconds
    ]:
        del state.approvals[key]


def _unique_id(state: State) -> str:
    while True:
        candidate = new_id()[:8]
        if not any(existing.startswith(candidate[:MIN_PREFIX]) for existing in state.approvals):
            return candidate
