"""``restore_config``: put back, key by key, what ``model_failover`` and
``graceful_degradation`` changed, once the upstream is back (see ``changes``)."""

from __future__ import annotations

from typing import Any

from recovery_cli.handlers.base import LOST, WOULD_LOSE, Loss, StrategyContext, StrategyResult
from recovery_cli.handlers.openwebui.api import Api
from recovery_cli.handlers.openwebui.changes import (
    CONNECTION_PREFIX,
    DEFAULT_MODELS,
    Judged,
    LiveConfig,
    RestorePlan,
    judge,
    plan_restore,
    read_live,
    write_values,
)
from recovery_cli.handlers.openwebui.checks import (
    UPSTREAM_UNAVAILABLE,
    Finding,
    Owner,
    Session,
    chat,
    connection_failure,
    first_default,
    listed_models,
)
from recovery_cli.handlers.openwebui.settings import RestoreConfigParams
from recovery_cli.handlers.openwebui.strategy_base import failed, open_session

OVERRIDE_HINT = "rerun with --override-conflicts (params.override_conflicts) to put them back"
OVERWRITE_UNDO = (
    "the values a person had set are under data.overwritten of this step's audit record; "
    "set them again in Admin Settings"
)


def restore(
    handler: Owner, ctx: StrategyContext, params: RestoreConfigParams, api: Api
) -> StrategyResult:
    """The body of the ``restore_config`` strategy (declared in ``strategies``)."""
    changes = handler.files.load_changes()
    if not changes:
        return StrategyResult.failure(
            "nothing_to_restore", "no recorded change: no recovery changed the config"
        )
    session = open_session(handler, api)
    if isinstance(session, StrategyResult):
        return session
    live = read_live(session)
    if isinstance(live, Finding):
        return failed(live)
    plan = plan_restore(changes.values(), live, params.override_conflicts)
    still = _upstream_still_failing(session, live, plan)
    if still is not None:
        return still
    if ctx.dry_run:
        return _dry_run(plan)
    problem = write_values(session, live, [(j.change, j.change.before) for j in plan.writes])
    if problem is not None:
        return failed(problem)
    if params.verify_chat:
        failing = _chat_after_restore(session, plan, live)
        if failing is not None:
            return _put_back(session, plan, failing)
    return _verify_restored(handler, session, plan)


def _upstream_still_failing(
    session: Session, live: LiveConfig, plan: RestorePlan
) -> StrategyResult | None:
    """A connection the recovery switched off stays off while its model list still fails."""
    reasons = []
    for judged in plan.writes:
        if judged.change.key.startswith(CONNECTION_PREFIX) and judged.change.set is False:
            index = live.connection_index(judged.change)
            reason = connection_failure(session, index) if index is not None else None
            if reason is not None:
                reasons.append(f"connection {index}: {reason}")
    if not reasons:
        return None
    detail = f"upstream still failing ({'; '.join(reasons)}); kept degraded"
    return StrategyResult.failure(UPSTREAM_UNAVAILABLE, detail)


def _dry_run(plan: RestorePlan) -> StrategyResult:
    keys = ", ".join(j.change.key for j in plan.writes) or "nothing"
    detail = f"dry run: would put back {keys}"
    if plan.conflicts:
        detail += f"; would leave alone what a person changed since: {_described(plan.conflicts)}"
    if plan.overridden:
        detail += f"; would overwrite what a person set: {_described(plan.overridden)}"
    loss = Loss(
        "config values a person set since the recovery changed them, overwritten by the restore",
        len(plan.overridden),
        tuple(plan.overridden_keys),
        undo=OVERWRITE_UNDO if plan.overridden else "",
    )
    return StrategyResult.success(
        detail,
        **{WOULD_LOSE: loss.to_data()},
        restore_keys=sorted(j.change.key for j in plan.writes),
        conflicts=plan.conflict_keys,
    )


def _chat_after_restore(session: Session, plan: RestorePlan, live: LiveConfig) -> Finding | None:
    """A model list can answer while chat still fails (an overloaded backend): only a
    chat through the restored default proves the upstream is back."""
    restored = [j.change.before for j in plan.writes if j.change.key == DEFAULT_MODELS]
    value = restored[0] if restored else live.models.get(DEFAULT_MODELS)
    model = first_default({DEFAULT_MODELS: value})
    models = listed_models(session, refresh=True)
    ids = [str(m["id"]) for m in models] if isinstance(models, list) else []
    if model not in ids:
        model = ids[0] if ids else None
    if model is None:
        return None
    problem = chat(session, model)
    return problem if problem and problem.failure_type == UPSTREAM_UNAVAILABLE else None


def _put_back(session: Session, plan: RestorePlan, why: Finding) -> StrategyResult:
    """The upstream is not back after all: give the recovery's values back (the records
    stay, so the next restore tries again)."""
    live = read_live(session)
    if isinstance(live, Finding):
        return failed(live)
    problem = write_values(session, live, [(j.change, j.change.set) for j in plan.writes])
    if problem is not None:
        return failed(problem)
    what = ", ".join(j.change.key for j in plan.writes)
    degraded = any(j.change.by == "graceful_degradation" for j in plan.writes)
    note = "degradation put back" if degraded else "the fallback put back"
    detail = f"restored, but {why.detail}; {note} ({what})"
    return StrategyResult.failure(UPSTREAM_UNAVAILABLE, detail)


def _verify_restored(handler: Owner, session: Session, plan: RestorePlan) -> StrategyResult:
    live = read_live(session)
    if isinstance(live, Finding):
        return failed(live)
    differs = sorted(
        j.change.key
        for j in plan.writes
        if judge(j.change, live).verdict not in ("settled", "gone")
    )
    if differs:
        return StrategyResult.failure(
            "restore_incomplete", f"still not as before the incident: {', '.join(differs)}"
        )
    handler.files.forget_changes(j.change.key for j in [*plan.writes, *plan.settled])
    handler.files.drop_baseline()
    return _restored(plan)


def _restored(plan: RestorePlan) -> StrategyResult:
    keys = sorted(j.change.key for j in plan.writes)
    detail = f"put back {', '.join(keys) or 'nothing'} as before the incident"
    if plan.settled:
        detail += f"; already back or gone: {', '.join(j.change.key for j in plan.settled)}"
    data: dict[str, Any] = {
        "exit_degraded": True,
        "restored_keys": keys,
        "conflicts": plan.conflict_keys,
    }
    if plan.conflicts:
        detail += (
            f"; left alone what a person changed since: {_described(plan.conflicts)}; "
            + OVERRIDE_HINT
        )
    if plan.overridden:
        detail += f"; overwrote what a person set: {_described(plan.overridden)}"
        data["overwritten"] = {j.change.key: j.live for j in plan.overridden}
        data[LOST] = Loss(
            "config values a person set since the recovery changed them, overwritten",
            len(plan.overridden),
            tuple(plan.overridden_keys),
            undo=OVERWRITE_UNDO,
        ).to_data()
    return StrategyResult.success(detail, **data)


def _described(judged: list[Judged]) -> str:
    return "; ".join(j.describe() for j in judged)
