"""disk_cleanup's safe walk, including the attack suite: every test that plants a trap
keeps a canary file outside the root that matches the patterns and is old enough, so the
only thing keeping it alive is the walk refusing to leave the root."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recovery_cli.handlers.system.cleanup import CleanupReport, CleanupRules, clean, open_root

OLD = 7200.0
RULES = CleanupRules(
    patterns=("*.tmp", "*.bak", "*.lock", "core.*"), min_age_seconds=3600, max_bytes=10**9
)


def plant(path: Path, size: int = 100, age: float = OLD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def run(roots: list[Path], rules: CleanupRules = RULES, dry_run: bool = False) -> CleanupReport:
    return clean(
        [str(r) for r in roots],
        rules,
        dry_run=dry_run,
        deadline=time.monotonic() + 30,
        now=time.time(),
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    return plant(tmp_path / "outside" / "canary.tmp")


def removed(report: CleanupReport) -> set[str]:
    return {r.path for r in report.removed}


def test_removes_only_old_matching_regular_files(root: Path) -> None:
    old = plant(root / "a.tmp", 300)
    nested = plant(root / "sub" / "deeper" / "b.bak", 200)
    young = plant(root / "new.tmp", age=60)
    unmatched = plant(root / "keep.txt")
    report = run([root])
    assert removed(report) == {str(old), str(nested)}
    assert report.bytes_freed == 500
    assert not old.exists() and not nested.exists()
    assert young.exists() and unmatched.exists()
    assert report.skipped["too young"] == 1 and report.skipped["no pattern matched"] == 1
    data = report.as_data()
    listed = data["removed"]
    assert data["removed_count"] == 2 and isinstance(listed, list)
    assert {"path": str(old), "bytes": 300} in listed


def test_dry_run_lists_and_keeps(root: Path) -> None:
    target = plant(root / "a.tmp")
    report = run([root], dry_run=True)
    assert removed(report) == {str(target)}
    assert target.exists()


def test_byte_budget_stops_removal(root: Path) -> None:
    for index in range(4):
        plant(root / f"f{index}.tmp", 1000)
    rules = CleanupRules(patterns=("*.tmp",), min_age_seconds=3600, max_bytes=2500)
    report = run([root], rules)
    assert len(report.removed) == 2 and report.bytes_freed == 2000
    assert len(list(root.iterdir())) == 2
    assert report.budget_reached


def test_lock_files_need_the_stale_lock_age(root: Path) -> None:
    lock = plant(root / "app.lock", age=600)
    temp = plant(root / "app.tmp", age=600)
    rules = CleanupRules(patterns=("*.lock", "*.tmp"), min_age_seconds=60, max_bytes=10**9)
    report = run([root], rules)
    assert removed(report) == {str(temp)}
    assert lock.exists()


def test_quarantine_moves_instead_of_deleting(root: Path, tmp_path: Path) -> None:
    target = plant(root / "x.bak", 42)
    quarantine = tmp_path / "quarantine"
    rules = CleanupRules(
        patterns=("*.bak",), min_age_seconds=0, max_bytes=10**9, quarantine_dir=str(quarantine)
    )
    report = run([root], rules)
    assert removed(report) == {str(target)} and not target.exists()
    moved = list(quarantine.iterdir())
    assert len(moved) == 1 and moved[0].name.endswith("-x.bak") and moved[0].stat().st_size == 42
    assert quarantine.stat().st_mode & 0o777 == 0o700


def test_quarantine_inside_the_root_is_not_cleaned_again(root: Path) -> None:
    plant(root / "x.bak")
    rules = CleanupRules(
        patterns=("*.bak",), min_age_seconds=0, max_bytes=10**9, quarantine_dir=str(root / "q")
    )
    first = run([root], rules)
    second = run([root], rules)
    assert len(first.removed) == 1 and second.removed == []
    assert second.skipped["quarantine"] == 1 and len(list((root / "q").iterdir())) == 1


def test_hard_linked_file_is_kept(root: Path, canary: Path) -> None:
    link = root / "linked.tmp"
    os.link(canary, link)
    report = run([root])
    assert link.exists() and canary.exists()
    assert report.skipped["hard-linked"] == 1


# --------------------------------------------------------------------------- attacks


def test_symlinks_inside_the_root_are_not_followed(root: Path, canary: Path) -> None:
    (root / "dirlink").symlink_to(canary.parent)
    (root / "filelink.tmp").symlink_to(canary)
    report = run([root])
    assert canary.exists()
    assert (root / "dirlink").is_symlink() and (root / "filelink.tmp").is_symlink()
    assert report.removed == [] and report.skipped["symlink"] == 2


def test_root_that_is_a_symlink_is_refused(tmp_path: Path, canary: Path) -> None:
    link = tmp_path / "rootlink"
    link.symlink_to(canary.parent)
    report = run([link])
    assert canary.exists()
    assert "symlink" in report.refused[str(link)]


def test_symlinked_parent_component_is_refused(tmp_path: Path) -> None:
    real_parent = tmp_path / "real"
    victim = plant(real_parent / "root" / "victim.tmp")
    (tmp_path / "parentlink").symlink_to(real_parent)
    via_link = tmp_path / "parentlink" / "root"
    report = run([via_link])
    assert victim.exists()
    assert "'parentlink' is a symlink" in report.refused[str(via_link)]


def test_root_under_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    target = plant(shared / "root" / "a.tmp")
    shared.chmod(0o777)
    report = run([shared / "root"])
    assert target.exists()
    assert "writable by others" in report.refused[str(shared / "root")]
    shared.chmod(0o1777)  # root-owned and sticky, like /tmp: others cannot rename our root
    assert removed(run([shared / "root"])) == {str(target)}


def test_relative_and_slash_roots_are_refused() -> None:
    report = clean(
        ["/", "tmp", "/tmp/../etc"],
        RULES,
        dry_run=True,
        deadline=time.monotonic() + 5,
        now=time.time(),
    )
    assert set(report.refused) == {"/", "tmp", "/tmp/../etc"}


def test_directory_swapped_for_a_symlink_during_the_walk(root: Path, canary: Path) -> None:
    """A thread keeps replacing root/d with a symlink to the canary's directory."""
    target = root / "d"
    stop = threading.Event()

    def swapper() -> None:
        while not stop.is_set():
            try:
                target.mkdir(exist_ok=True)
                plant(target / "inside.tmp")
                os.rename(target, root / "parked")
                target.symlink_to(canary.parent)
                time.sleep(0.0005)
                os.unlink(target)
                shutil.rmtree(root / "parked")
            except OSError:
                continue  # the cleaner removed something we planted: plant again

    thread = threading.Thread(target=swapper)
    thread.start()
    try:
        deadline = time.monotonic() + 1.5
        runs = 0
        while time.monotonic() < deadline:
            run([root])
            runs += 1
            assert canary.exists()
    finally:
        stop.set()
        thread.join(5)
    assert runs > 10 and canary.exists()


@pytest.fixture
def holder(root: Path) -> Iterator[Path]:
    """A file another process holds open, and one it holds an flock on (then closes)."""
    held = plant(root / "held.tmp")
    locked = plant(root / "locked.lock")
    script = (
        "import fcntl,sys,time\n"
        "a=open(sys.argv[1]); b=open(sys.argv[2]); fcntl.flock(b, fcntl.LOCK_EX)\n"
        "print('ready', flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(held), str(locked)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    yield root
    child.kill()
    child.wait()
    child.stdout.close()


def test_files_held_open_or_locked_by_a_process_are_kept(holder: Path) -> None:
    loose = plant(holder / "loose.tmp")
    report = run([holder])
    assert removed(report) == {str(loose)}
    assert (holder / "held.tmp").exists() and (holder / "locked.lock").exists()
    assert report.skipped["open or locked by a process"] == 2


def test_file_we_hold_locked_is_kept(root: Path) -> None:
    target = plant(root / "mine.lock")
    with open(target) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        run([root])
        assert target.exists()


def _mount(*args: str) -> bool:
    done = subprocess.run(["mount", *args], capture_output=True, check=False)
    return done.returncode == 0


@pytest.fixture
def mountpoint(root: Path) -> Iterator[Path]:
    point = root / "mnt"
    point.mkdir()
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


def test_tmpfs_mount_inside_the_root_is_not_entered(mountpoint: Path) -> None:
    if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)):
        pytest.skip("cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)")
    inside = plant(mountpoint / "on-tmpfs.tmp")
    report = run([mountpoint.parent])
    assert inside.exists()
    assert report.skipped["other filesystem"] == 1


def test_bind_mount_of_the_same_filesystem_is_not_entered(mountpoint: Path, canary: Path) -> None:
    """Same st_dev as the root: only the mount id tells it apart."""
    if os.geteuid() != 0 or not _mount("--bind", str(canary.parent), str(mountpoint)):
        pytest.skip("cannot bind-mount here (needs root / CAP_SYS_ADMIN)")
    assert (mountpoint / canary.name).exists()
    report = run([mountpoint.parent])
    assert canary.exists()
    assert report.skipped["other mount"] == 1


def test_open_root_never_follows_a_symlink(tmp_path: Path, canary: Path) -> None:
    (tmp_path / "link").symlink_to(canary.parent)
    with pytest.raises(Exception, match="symlink"):
        open_root(str(tmp_path / "link"))
    fd = open_root(str(canary.parent))
    try:
        assert os.path.samestat(os.fstat(fd), os.stat(canary.parent))
    finally:
        os.close(fd)
