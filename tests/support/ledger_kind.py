"""``ledger``: a small kind for core tests, over real files in a directory.

The store is ``records.json`` (a list of ids); ``snapshot.json`` is its rollback target.
Its probe is down (``unreadable``) while ``damaged`` exists, and healthy otherwise; a
healthy ledger is marked ``on_fallback`` while ``fallback`` exists, and names
``restore`` as its follow-up once ``primary_back`` exists too. ``rollback`` restores the
snapshot: its dry run says which ids it would discard; the real run gives back those listed
in ``replayable.json`` and reports the rest as lost (and fails its check while
``rollback_fails`` exists); ``restore`` fails while ``restore_fails`` exists; ``wipe`` (destructive) and ``nudge`` count
their runs and raise. Registered by
the tests in-process (``registry.KINDS``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recovery_cli.handlers.base import (
    LOST,
    WOULD_LOSE,
    BaseHandler,
    KindSpec,
    Loss,
    ProbeResult,
    SettingsError,
    StrategyContext,
    StrategyResult,
)
from recovery_cli.handlers.settings_models import Params, SettingsModel, kind_validator, takes

KIND = KindSpec(
    description="a ledger of ids in a directory (core tests)",
    handler="tests.support.ledger_kind:LedgerHandler",
    settings="tests.support.ledger_kind:validate",
    strategies=("rollback", "restore", "poke", "wipe", "nudge"),
    strategy_module="tests.support.ledger_kind",
    degraded_failure_types=("unreadable",),
    cannot_help={"poke": ("unreadable",)},
    destructive=("rollback", "wipe"),
    warnings="tests.support.ledger_kind:warnings",
)


class LedgerSettings(SettingsModel):
    directory: str
    warn: bool = False


class RollbackParams(Params):
    override_conflicts: bool = False


class NoParams(Params):
    pass


validate = kind_validator(
    LedgerSettings,
    {
        "rollback": RollbackParams,
        "restore": NoParams,
        "poke": NoParams,
        "wipe": NoParams,
        "nudge": NoParams,
    },
)


def warnings(settings: Any, params: Any) -> list[SettingsError]:
    if settings.get("warn"):
        return [SettingsError("settings.warn", "this ledger cannot work as meant")]
    return []


class LedgerHandler(BaseHandler):
    kind = "ledger"
    spec = KIND

    @property
    def root(self) -> Path:
        return Path(str(self.context.settings["directory"]))

    def ids(self, name: str) -> list[str]:
        return list(json.loads((self.root / name).read_text()))

    def probe(self) -> ProbeResult:
        if (self.root / "damaged").exists():
            return ProbeResult.down("unreadable", "records.json is damaged")
        if (self.root / "fallback").exists():
            back = "restore" if (self.root / "primary_back").exists() else None
            return ProbeResult.ok(
                "serving from the fallback", marks=("on_fallback",), follow_up=back
            )
        return ProbeResult.ok(f"{len(self.ids('records.json'))} records")


def _missing(handler: LedgerHandler) -> list[str]:
    kept = set(handler.ids("snapshot.json"))
    return [i for i in handler.ids("records.json") if i not in kept]


@takes(RollbackParams)
def rollback(
    handler: LedgerHandler, ctx: StrategyContext, params: RollbackParams
) -> StrategyResult:
    missing = _missing(handler)
    if ctx.dry_run:
        loss = Loss(f"{len(missing)} records newer than the snapshot", len(missing), tuple(missing))
        return StrategyResult.success("would restore snapshot.json", **{WOULD_LOSE: loss.to_data()})
    replayable = set(json.loads((handler.root / "replayable.json").read_text()))
    lost = [i for i in missing if i not in replayable]
    records = handler.ids("snapshot.json") + [i for i in missing if i in replayable]
    (handler.root / "records.json").write_text(json.dumps(records))
    (handler.root / "damaged").unlink(missing_ok=True)
    summary = f"{len(lost)} of {len(missing)} records not replayed"
    loss = Loss(summary, len(lost), tuple(lost), where=str(handler.root / "quarantine"))
    if (handler.root / "rollback_fails").exists():  # acted, then failed its check
        (handler.root / "damaged").write_text("x")
        return StrategyResult.failure("verify_failed", summary, **{LOST: loss.to_data()})
    note = " (conflicts overridden)" if params.override_conflicts else ""
    return StrategyResult.success(f"restored; {summary}{note}", **{LOST: loss.to_data()})


@takes(NoParams)
def restore(handler: LedgerHandler, ctx: StrategyContext, params: NoParams) -> StrategyResult:
    if ctx.dry_run:
        return StrategyResult.success("would leave the fallback")
    if (handler.root / "restore_fails").exists():
        return StrategyResult.failure("primary_refused", "the primary refused the restore")
    (handler.root / "fallback").unlink(missing_ok=True)
    (handler.root / "primary_back").unlink(missing_ok=True)
    return StrategyResult.success("back on the primary")


@takes(NoParams)
def poke(handler: LedgerHandler, ctx: StrategyContext, params: NoParams) -> StrategyResult:
    (handler.root / "poked").write_text("1")
    return StrategyResult.failure("unreadable", "poking does not help")


def _count_and_raise(handler: LedgerHandler, name: str) -> StrategyResult:
    """Acts (one more line in ``NAME.runs``), then raises, as a step can half-way."""
    with open(handler.root / f"{name}.runs", "a") as runs:
        runs.write("x\n")
    raise RuntimeError(f"{name} broke after acting")


@takes(NoParams)
def wipe(handler: LedgerHandler, ctx: StrategyContext, params: NoParams) -> StrategyResult:
    """Destructive (``KIND.destructive``): never run again after it raised."""
    return _count_and_raise(handler, "wipe")


@takes(NoParams)
def nudge(handler: LedgerHandler, ctx: StrategyContext, params: NoParams) -> StrategyResult:
    """Not destructive: retried after it raised, like any step."""
    return _count_and_raise(handler, "nudge")
