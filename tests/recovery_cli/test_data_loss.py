"""What a destructive step discards is in its approval's plan (and bound by its hash), and a
recovery that could not give everything back ends ``recovered_with_loss``: exit code 5, an
alert, the ids in the audit trail. Also the degraded modes' failure types, the strategies a
kind says cannot help, config warnings, ``on_fallback`` and the follow-up step.

The component is the ``ledger`` test kind (``tests/support/ledger_kind.py``) over real files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recovery_cli import registry
from recovery_cli.errors import ExitCode
from recovery_cli.metrics import build_registry, exposition
from recovery_cli.run_context import RecoverRequest
from recovery_cli.status import component_status
from tests.support.core import Core, make_core
from tests.support.receiver import AlertReceiver

SNAPSHOT = [f"r{i}" for i in range(10)]
NEWER = ["r10", "r11", "r12"]


@pytest.fixture(autouse=True)
def ledger_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.KINDS, "ledger", "tests.support.ledger_kind:KIND")


@pytest.fixture
def receiver() -> Iterator[AlertReceiver]:
    with AlertReceiver() as running:
        yield running


def ledger(tmp_path: Path, replayable: list[str], damaged: bool = True) -> Path:
    root = tmp_path / "ledger"
    root.mkdir()
    (root / "records.json").write_text(json.dumps(SNAPSHOT + NEWER))
    (root / "snapshot.json").write_text(json.dumps(SNAPSHOT))
    (root / "replayable.json").write_text(json.dumps(replayable))
    if damaged:
        (root / "damaged").write_text("x")
    return root


def core_for(
    tmp_path: Path,
    root: Path,
    receiver: AlertReceiver | None = None,
    modes: dict[str, Any] | None = None,
    **component: Any,
) -> Core:
    config: dict[str, Any] = {
        "version": 1,
        "components": {
            "books": {
                "kind": "ledger",
                "settings": {"directory": str(root)},
                "chain": ["rollback"],
                "strategies": {"rollback": {"approval": "required"}},
                **component,
            }
        },
        "degraded_modes": modes or {},
    }
    if receiver is not None:
        config["alerting"] = {"webhook_url": receiver.url}
    return make_core(tmp_path, config)


def pending_approval(core: Core) -> Any:
    (approval,) = core.store.load_state().approvals.values()
    return approval


def test_the_approval_plan_names_what_the_rollback_would_discard(tmp_path: Path) -> None:
    core = core_for(tmp_path, ledger(tmp_path, replayable=[]))

    (report,) = core.recover("books")

    assert report.code is ExitCode.BLOCKED
    assert "would lose: 3 records newer than the snapshot" in report.detail
    approval = pending_approval(core)
    assert approval.would_lose == {
        "summary": "3 records newer than the snapshot",
        "count": 3,
        "items": NEWER,
    }
    (requested,) = core.records("approval_requested")
    assert requested["would_lose"]["items"] == NEWER


def test_an_approval_is_refused_when_the_step_would_now_discard_more(tmp_path: Path) -> None:
    root = ledger(tmp_path, replayable=NEWER)
    core = core_for(tmp_path, root)
    core.recover("books")
    approval = pending_approval(core)
    (root / "records.json").write_text(json.dumps([*SNAPSHOT, *NEWER, "r13"]))

    report = core.approve(approval.id, "oncall")

    assert report.code is ExitCode.BLOCKED
    assert "what the step would discard changed" in report.detail
    assert json.loads((root / "records.json").read_text())[-1] == "r13"  # nothing ran
    assert core.store.load_state().approvals[approval.id].status == "superseded"


def test_a_rollback_that_replays_everything_is_a_plain_recovery(tmp_path: Path) -> None:
    root = ledger(tmp_path, replayable=NEWER)
    core = core_for(tmp_path, root)
    core.recover("books")

    report = core.approve(pending_approval(core).id, "oncall")

    assert (report.code, report.outcome) == (ExitCode.OK, "recovered")
    assert json.loads((root / "records.json").read_text()) == SNAPSHOT + NEWER
    assert core.records("attempt")[-1]["outcome"] == "success"


def test_a_rollback_that_loses_records_is_recovered_with_loss(
    tmp_path: Path, receiver: AlertReceiver
) -> None:
    core = core_for(tmp_path, ledger(tmp_path, replayable=["r10"]), receiver)
    core.recover("books")

    report = core.approve(pending_approval(core).id, "oncall")

    (approved,) = core.records("approved")
    assert approved["would_lose"]["count"] == 3 and "would lose: 3 records" in approved["detail"]
    assert (report.code, report.outcome) == (ExitCode.RECOVERED_WITH_LOSS, "recovered_with_loss")
    assert int(ExitCode.RECOVERED_WITH_LOSS) == 5
    assert report.health == "healthy"
    assert "2 of 3 records not replayed" in report.detail
    attempt = core.records("attempt")[-1]
    assert attempt["outcome"] == "recovered_with_loss"
    step = core.records("step")[-1]
    assert step["data"]["lost"]["items"] == ["r11", "r12"]
    assert step["data"]["lost"]["where"].endswith("quarantine")
    fired = [b for _, b in receiver.received if b["alert"] == "RecoveryDataLoss"]
    assert len(fired) == 1 and fired[0]["status"] == "firing"
    assert fired[0]["labels"]["severity"] == "critical"


def test_yes_records_what_the_step_would_discard_with_the_approval(tmp_path: Path) -> None:
    core = core_for(tmp_path, ledger(tmp_path, replayable=[]))

    (report,) = core.recover("books", yes=True)

    assert report.code is ExitCode.RECOVERED_WITH_LOSS
    (approved,) = core.records("approved")
    assert approved["would_lose"]["count"] == 3
    assert "would lose: 3 records" in approved["detail"]


def test_override_conflicts_reaches_the_step_and_is_kept_by_its_approval(tmp_path: Path) -> None:
    core = core_for(tmp_path, ledger(tmp_path, replayable=NEWER))
    request = RecoverRequest(
        components=("books",), strategy="rollback", override_conflicts=True, trigger="cron"
    )
    core.orchestrator().recover(request)
    approval = pending_approval(core)
    assert approval.params == {"override_conflicts": True}

    report = core.approve(approval.id, "oncall")

    assert report.code is ExitCode.OK
    assert "(conflicts overridden)" in core.records("step")[-1]["detail"]


def test_override_conflicts_is_refused_for_a_strategy_without_conflicts(tmp_path: Path) -> None:
    from recovery_cli.errors import UsageError

    core = core_for(tmp_path, ledger(tmp_path, replayable=[]), strategies={})
    request = RecoverRequest(
        components=("books",), strategy="restore", override_conflicts=True, trigger="cron"
    )
    with pytest.raises(UsageError, match="no conflicts to override"):
        core.orchestrator().recover(request)


def test_a_degraded_mode_is_entered_only_for_its_failure_types(tmp_path: Path) -> None:
    modes = {
        "books_gone": {"component": "books"},  # the kind's default: unreadable
        "books_slow": {"component": "books", "failure_types": ["slow"]},
    }
    root = ledger(tmp_path, replayable=NEWER)
    core = core_for(tmp_path, root, modes=modes, chain=["poke"], strategies={})
    core.config.components["books"].on_failure.clear()

    (report,) = core.recover("books")

    assert report.code is ExitCode.UNHEALTHY
    assert sorted(core.store.load_state().degraded) == ["books_gone"]
    (entered,) = core.records("degraded_enter")
    assert (entered["mode"], entered["failure_type"]) == ("books_gone", "unreadable")


def test_a_strategy_the_kind_says_cannot_help_is_not_run(tmp_path: Path) -> None:
    root = ledger(tmp_path, replayable=NEWER)
    core = core_for(tmp_path, root, chain=["poke", "rollback"], strategies={})

    (report,) = core.recover("books")

    assert core.config.chain_for("books", "unreadable") == ["rollback"]
    assert core.config.chain_for("books", "other") == ["poke", "rollback"]
    assert report.code is ExitCode.OK
    assert [s.strategy for s in report.steps] == ["rollback"]
    assert not (root / "poked").exists()


def test_a_kind_warning_names_the_config_line(tmp_path: Path) -> None:
    root = ledger(tmp_path, replayable=[])
    core = core_for(tmp_path, root, settings={"directory": str(root), "warn": True})

    (warning,) = core.config.warnings

    assert warning.startswith("test.yml:")
    assert "components.books.settings.warn: this ledger cannot work as meant" in warning


def test_on_fallback_is_shown_alerted_and_restored_by_the_follow_up(
    tmp_path: Path, receiver: AlertReceiver
) -> None:
    root = ledger(tmp_path, replayable=[], damaged=False)
    (root / "fallback").write_text("x")
    core = core_for(tmp_path, root, receiver, strategies={})

    (first,) = core.recover("books")

    assert (first.code, first.outcome) == (ExitCode.OK, "healthy")
    (row,) = component_status(
        core.config, core.store, core.orchestrator().ctx.components, probe=True
    )
    assert row.marks == ("on_fallback",) and "restores it" in row.next_step
    text = exposition(build_registry(core.config, core.store))
    assert 'infra_recovery_component_on_fallback{component="books"} 1.0' in text
    fired = [b for _, b in receiver.received if b["alert"] == "RecoveryOnFallback"]
    assert fired and fired[0]["labels"]["severity"] == "info"

    (root / "primary_back").write_text("x")
    (second,) = core.recover("books")

    assert (second.code, second.outcome) == (ExitCode.OK, "recovered")
    assert [s.strategy for s in second.steps] == ["restore"]
    assert not (root / "fallback").exists()
    assert core.records("attempt")[-1]["outcome"] == "success"
    resolved = [b for _, b in receiver.received if b["alert"] == "RecoveryOnFallback"]
    assert resolved[-1]["status"] == "resolved"
    text = exposition(build_registry(core.config, core.store))
    assert 'infra_recovery_component_on_fallback{component="books"} 0.0' in text


def test_a_failed_follow_up_stays_healthy_backs_off_and_spends_no_recovery_budget(
    tmp_path: Path,
) -> None:
    root = ledger(tmp_path, replayable=NEWER, damaged=False)
    for flag in ("fallback", "primary_back", "restore_fails"):
        (root / flag).write_text("x")
    core = core_for(tmp_path, root, strategies={})

    (first,) = core.recover("books")
    (again,) = core.recover("books")

    assert (first.code, first.outcome) == (ExitCode.OK, "healthy")
    assert "follow-up restore failed: the primary refused the restore" in first.detail
    ended = core.records("attempt")[-1]
    assert (ended["outcome"], ended["follow_up"]) == ("failed", True)
    assert core.store.load_state().components["books"]["state"] == "healthy"
    assert "tried again after 300s" in again.detail
    assert len(core.records("attempt")) == 2  # the second run wrote no attempt
    for _ in range(4):  # past the hourly cap, had follow-ups counted
        core.clock.advance(301)
        core.recover("books")
    assert len(core.records("attempt")) == 10

    (root / "damaged").write_text("x")
    (real,) = core.recover("books")

    assert (real.code, real.outcome) == (ExitCode.OK, "recovered"), real.detail
    assert [s.strategy for s in real.steps] == ["rollback"]


def test_a_step_that_lost_data_and_then_failed_still_raises_the_data_loss_alert(
    tmp_path: Path, receiver: AlertReceiver
) -> None:
    root = ledger(tmp_path, replayable=[])
    (root / "rollback_fails").write_text("x")
    core = core_for(tmp_path, root, receiver, strategies={})

    (report,) = core.recover("books")

    assert report.code is ExitCode.UNHEALTHY
    assert "data lost: 3 of 3 records not replayed" in report.detail
    assert "data lost" in core.records("attempt")[-1]["detail"]
    fired = [b for _, b in receiver.received if b["alert"] == "RecoveryDataLoss"]
    assert len(fired) == 1


def test_an_approval_is_bound_to_the_component_settings_it_was_asked_for(tmp_path: Path) -> None:
    root = ledger(tmp_path, replayable=NEWER)
    core_for(tmp_path, root).recover("books")
    moved = core_for(tmp_path, root, settings={"directory": str(root), "warn": False})
    retargeted = core_for(tmp_path, root, settings={"directory": f"{root}/."})
    approval = pending_approval(moved)

    report = retargeted.approve(approval.id, "oncall")

    assert report.code is ExitCode.BLOCKED and "plan changed" in report.detail
    assert json.loads((root / "records.json").read_text())[-1] == "r12"  # nothing ran


@pytest.mark.parametrize(("strategy", "runs"), [("wipe", 1), ("nudge", 3)])
def test_a_destructive_step_that_raised_is_not_run_again(
    tmp_path: Path, strategy: str, runs: int
) -> None:
    """It may have acted before it raised: a second run could bury what the first kept.
    Any other step is retried (``retry.attempts`` 3)."""
    root = ledger(tmp_path, replayable=[])
    retry = {"attempts": 3, "initial_delay": 0, "max_delay": 0, "jitter": False}
    core = core_for(tmp_path, root, chain=[strategy], strategies={strategy: {"retry": retry}})

    (report,) = core.recover("books")

    assert report.code is ExitCode.UNHEALTHY
    assert (root / f"{strategy}.runs").read_text().count("x") == runs
    assert f"{strategy} broke after acting" in core.records("step")[-1]["detail"]
