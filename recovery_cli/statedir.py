"""Trust rules for the state directory, and the only ways files inside it are created.

The tool runs as root from cron, so a state dir that another user can write would let that
user steer root's writes. A state dir is used only when it, and every parent up to the first
root-owned directory that is sticky or writable by nobody else, is owned by root or by us and
writable by nobody else. Nothing inside it is followed through a symlink, and the tool never
changes the mode of a directory it did not create.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from recovery_cli.errors import StateError, UntrustedStateDir
from recovery_cli.handlers.util import UnsafeDirectory, private_dir, private_dir_problem

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def check_trusted(directory: Path) -> bool:
    """Refuse an untrusted state dir; returns whether it exists (a read-only run may find
    none, and then reads nothing)."""
    if str(directory) == "":
        raise UntrustedStateDir("the state dir is an empty path; give a directory")
    try:
        os.lstat(directory)
    except FileNotFoundError:
        _check_ancestors(_existing_ancestor(directory))
        return False
    except OSError as exc:
        raise StateError(f"cannot use state directory {directory}: {exc.strerror}") from exc
    _check_owned_dir(directory)
    _check_ancestors(Path(os.path.realpath(directory.parent)))
    return True


def create_state_dir(directory: Path) -> None:
    """Create the missing levels of ``directory`` (0700, ours), after checking who owns
    the part that exists."""
    missing: list[Path] = []
    level = directory
    while not os.path.lexists(level):
        missing.append(level)
        level = level.parent
    if level == directory:
        check_trusted(directory)
        return
    _check_ancestors(_resolved(level))
    for path in reversed(missing):
        try:
            os.mkdir(path, PRIVATE_DIR_MODE)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StateError(f"cannot create state directory {path}: {exc.strerror}") from exc


def private_subdir(path: Path) -> Path:
    """A directory inside the state dir: created 0700 when missing; refused when it is a
    symlink, not a directory, someone else's or writable by others."""
    try:
        return private_dir(path)
    except UnsafeDirectory as exc:
        raise UntrustedStateDir(f"state directory entry {exc}") from None
    except OSError as exc:
        raise StateError(f"cannot create {path}: {exc.strerror}") from exc


def open_private(path: Path, flags: int) -> int:
    """Open a file inside the state dir without following a symlink; new files are 0600."""
    return os.open(path, flags | NOFOLLOW, PRIVATE_FILE_MODE)


def _check_owned_dir(path: Path) -> None:
    problem = private_dir_problem(path)
    if problem is not None:
        raise UntrustedStateDir(f"state directory {problem}")


def _check_ancestors(start: Path) -> None:
    """Walk up until a root-owned directory that is sticky or writable by nobody else."""
    for parent in (start, *start.parents):
        info = os.stat(parent)
        if info.st_uid == 0 and (info.st_mode & stat.S_ISVTX or not info.st_mode & OTHERS_WRITE):
            return
        if info.st_uid not in (0, os.geteuid()) or info.st_mode & OTHERS_WRITE:
            raise UntrustedStateDir(
                f"parent directory {parent} of the state dir can be changed by another user "
                f"(uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o}); "
                "put the state dir under a directory only root or you can write"
            )


def _existing_ancestor(path: Path) -> Path:
    level = path.parent
    while not os.path.lexists(level):
        level = level.parent
    return _resolved(level)


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))


MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 4096


def read_key_file(path: Path) -> bytes:
    """The audit chain's HMAC key: a regular file, not a symlink, only root's or ours, readable
    by nobody else, 16 to 4096 bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise UntrustedStateDir(f"audit.hmac_key_file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        problem = _key_problem(info)
        if problem:
            raise UntrustedStateDir(f"audit.hmac_key_file {path}: {problem}")
        key = os.read(fd, MAX_KEY_BYTES + 1)
    finally:
        os.close(fd)
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise UntrustedStateDir(
            f"audit.hmac_key_file {path}: must hold {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes"
        )
    return key


def _key_problem(info: os.stat_result) -> str | None:
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_uid not in (0, os.geteuid()):
        return f"owned by uid {info.st_uid}, not by root or by us"
    if info.st_mode & 0o077:
        return (
            f"readable or writable by others (mode {stat.S_IMODE(info.st_mode):04o}); chmod 600 it"
        )
    return None
