"""A state dir someone else can write is refused; nothing inside one is followed through a
symlink; the tool never changes the mode of a directory it did not create, and read-only
commands create nothing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.support.cli import Workspace, base_config, command_component, with_injected_fault

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown to another user")


def failing_app(ws: Workspace) -> None:
    ws.write_config(base_config({"app": command_component(["false"], {"fix": ["false"]})}))


def planted_torn_tail(state: Path, target: Path) -> None:
    """What a local user prepares in a state dir they own: a torn tail in today's audit
    file and audit/torn pointing at a directory only root can write."""
    audit = state / "audit"
    audit.mkdir(parents=True)
    import datetime as dt

    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    (audit / f"{today}.jsonl").write_bytes(b"x" * 70_000)
    (audit / "torn").symlink_to(target)


@as_root
def test_a_state_dir_owned_by_another_user_is_refused_and_nothing_is_written(
    ws: Workspace, tmp_path: Path
) -> None:
    failing_app(ws)
    target = tmp_path / "root-only"
    target.mkdir(mode=0o700)
    planted_torn_tail(ws.state, target)
    for path in (ws.state, ws.state / "audit"):
        os.chown(path, NOBODY, NOBODY)
    result = ws.run("recover")
    assert result.returncode == 2
    assert "owned by uid 65534" in result.stderr and len(result.stderr.splitlines()) == 1
    assert list(target.iterdir()) == []
    assert not (ws.state / "state.json").exists()


def test_a_world_writable_state_dir_is_refused_and_keeps_its_mode(ws: Workspace) -> None:
    failing_app(ws)
    ws.state.mkdir()
    ws.state.chmod(0o1777)  # like /tmp: sticky and writable by everyone
    result = ws.run("recover")
    assert result.returncode == 2
    assert "writable by group or others" in result.stderr
    assert stat.S_IMODE(ws.state.stat().st_mode) == 0o1777


def test_an_existing_private_enough_dir_is_used_without_chmod(ws: Workspace) -> None:
    failing_app(ws)
    ws.state.mkdir()
    ws.state.chmod(0o755)
    assert ws.run("recover").returncode == 1
    assert stat.S_IMODE(ws.state.stat().st_mode) == 0o755


def test_a_new_state_dir_is_created_private(ws: Workspace) -> None:
    failing_app(ws)
    assert ws.run("recover").returncode == 1
    assert stat.S_IMODE(ws.state.stat().st_mode) == 0o700
    state_file = ws.state / "state.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600


def test_a_parent_writable_by_others_is_refused(ws: Workspace, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # not sticky: anyone could rename our state dir away
    failing_app(ws)
    argv = ws.argv("recover")
    argv[argv.index("--state-dir") + 1] = str(shared / "state")
    import subprocess

    from tests.support.cli import child_env

    result = subprocess.run(argv, capture_output=True, text=True, env=child_env(), timeout=60)
    assert result.returncode == 2
    assert f"parent directory {shared}" in result.stderr
    assert not (shared / "state").exists()


def test_an_empty_state_dir_option_is_a_usage_error(ws: Workspace) -> None:
    failing_app(ws)
    argv = ws.argv("status", "--no-probe")
    argv[argv.index("--state-dir") + 1] = ""
    import subprocess

    from tests.support.cli import child_env

    result = subprocess.run(argv, capture_output=True, text=True, env=child_env(), timeout=60)
    assert result.returncode == 2
    assert "--state-dir is empty" in result.stderr


def test_a_symlinked_torn_dir_inside_a_trusted_state_dir_is_never_followed(
    ws: Workspace, tmp_path: Path
) -> None:
    failing_app(ws)
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    ws.state.mkdir(mode=0o700)
    planted_torn_tail(ws.state, target)
    result = ws.run("recover")
    assert result.returncode == 2
    assert "is a symlink" in result.stderr
    assert list(target.iterdir()) == []


def test_torn_fragments_are_private(ws: Workspace) -> None:
    failing_app(ws)
    assert ws.run("recover").returncode == 1
    day_file = next((ws.state / "audit").glob("*.jsonl"))
    with day_file.open("ab") as handle:
        handle.write(b'{"ts":"2026')
    ws.run("recover")
    fragments = list((ws.state / "audit" / "torn").iterdir())
    assert len(fragments) == 1
    assert stat.S_IMODE(fragments[0].stat().st_mode) == 0o600
    assert stat.S_IMODE((ws.state / "audit" / "torn").stat().st_mode) == 0o700


def internal_error_setup(ws: Workspace) -> dict[str, str]:
    failing_app(ws)
    ws.state.mkdir(mode=0o700)
    return with_injected_fault(ws.root)


def test_the_error_log_is_never_written_through_a_symlink(ws: Workspace, tmp_path: Path) -> None:
    fault = internal_error_setup(ws)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (ws.state / "errors.log").symlink_to(victim)
    result = ws.run("status", "--no-probe", env=fault)
    assert result.returncode == 4
    assert "no log written" in result.stderr
    assert victim.read_text() == "precious\n"


def test_no_error_log_outside_the_state_dir(ws: Workspace) -> None:
    fallback = Path("/tmp/recovery-cli-errors.log")
    before = fallback.stat().st_mtime_ns if fallback.exists() else None
    fault = internal_error_setup(ws)
    (ws.state / "errors.log").mkdir()  # the state dir's log cannot be written
    result = ws.run("status", "--no-probe", env=fault)
    assert result.returncode == 4 and "no log written" in result.stderr
    after = fallback.stat().st_mtime_ns if fallback.exists() else None
    assert after == before


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("status", "--no-probe"),
        ("recover", "--dry-run"),
        ("history",),
        ("approve",),
        ("metrics",),
    ],
)
def test_read_only_commands_create_nothing(ws: Workspace, args: tuple[str, ...]) -> None:
    failing_app(ws)
    result = ws.run(*args)
    assert result.returncode in (0, 1), result.stderr
    assert not ws.state.exists()


def test_a_deleted_lock_file_never_lets_two_runs_in(ws: Workspace) -> None:
    """Someone deletes files in the state dir while 30 runs race for the cap."""
    import threading

    component = command_component(["false"], {"fix": ["false"]})
    ws.write_config(base_config({"app": component}, cooldown_seconds=0, max_attempts_per_hour=3))
    ws.run("disable", "app", "--for", "1s", "--reason", "make the layout")
    ws.run("enable", "app")
    stop = threading.Event()

    def vandal() -> None:
        while not stop.is_set():
            for path in (ws.state / "locks").glob("*.lock"):
                path.unlink(missing_ok=True)
            (ws.state / "lock").unlink(missing_ok=True)

    thread = threading.Thread(target=vandal, daemon=True)
    thread.start()
    try:
        procs = [ws.popen("recover", "app") for _ in range(30)]
        codes = [p.wait(timeout=180) for p in procs]
        outputs = [p.communicate() for p in procs]
    finally:
        stop.set()
        thread.join()
    assert 4 not in codes, [err for _, err in outputs if "error" in err][:2]
    started = [r for r in ws.events("attempt", "app") if r["outcome"] == "started"]
    assert len(started) == 3
