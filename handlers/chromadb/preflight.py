"""``recovery test`` checks for the chromadb handler: read-only, quick, no chromadb import."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

from recovery_cli.handlers.base import Check
from recovery_cli.handlers.chromadb.offline import SQLITE_NAME
from recovery_cli.handlers.chromadb.probe import http_get

if TYPE_CHECKING:
    from recovery_cli.handlers.chromadb.handler import ChromaHandler

NEEDS_DIRECTORY = frozenset({"snapshot", "snapshot_rollback", "index_rebuild"})


def preflight(handler: ChromaHandler, strategy: str) -> list[Check]:
    checks = [_client_installed()]
    if handler.settings.url:
        checks.append(_server_answers(handler))
    if strategy in NEEDS_DIRECTORY or handler.settings.embedded:
        checks.append(_persist_directory(handler.settings.persist_directory))
    if strategy == "snapshot":
        checks.append(_writable("snapshot directory writable", handler.snapshot_root))
    if strategy == "snapshot_rollback":
        checks.append(_snapshot_available(handler))
    return checks


def _client_installed() -> Check:
    from recovery_cli.handlers.chromadb.snapshot import chromadb_version

    if importlib.util.find_spec("chromadb") is None:
        detail = "chromadb is not installed (pip install 'recovery-cli[chromadb]')"
        return Check("chromadb client installed", False, detail, found=False)
    return Check("chromadb client installed", True, f"chromadb {chromadb_version()}")


def _server_answers(handler: ChromaHandler) -> Check:
    answer = http_get(
        f"{handler.settings.url}/api/v2/heartbeat", handler.settings.heartbeat_timeout
    )
    ok = answer.status == 200
    detail = f"{handler.settings.url}: " + (
        "heartbeat ok" if ok else answer.error or f"HTTP {answer.status}"
    )
    # refused (no HTTP status, no timeout): nothing listens; anything else answered
    nothing_listens = answer.status is None and not answer.timed_out
    return Check("server reachable", ok, detail, found=not nothing_listens)


def _persist_directory(directory: Path | None) -> Check:
    name = "persist directory readable"
    if directory is None:
        return Check(name, False, "settings.persist_directory is not set")
    if not directory.exists():
        return Check(name, False, f"{directory} does not exist", found=False)
    sqlite = directory / SQLITE_NAME
    if not os.access(directory, os.R_OK | os.X_OK):
        return Check(name, False, f"{directory} is not readable", found=True)
    if not sqlite.is_file() or not os.access(sqlite, os.R_OK):
        return Check(name, False, f"{sqlite} is missing or unreadable", found=True)
    return Check(name, True, str(directory), found=True)


def _writable(name: str, path: Path) -> Check:
    anchor = path
    while not anchor.exists():
        anchor = anchor.parent
    ok = os.access(anchor, os.W_OK | os.X_OK)
    return Check(name, ok, f"{path} ({'writable' if ok else 'not writable'} at {anchor})")


def _snapshot_available(handler: ChromaHandler) -> Check:
    from recovery_cli.handlers.chromadb.snapshot import chromadb_version, select_snapshot

    chosen, skipped = select_snapshot(handler.snapshot_root, chromadb_version())
    if chosen is None:
        reasons = "; ".join(skipped[:3]) or f"none under {handler.snapshot_root}"
        # only a chroma that runs here can have been snapshotted
        return Check("restorable snapshot", False, reasons, found=False)
    return Check("restorable snapshot", True, f"{chosen.name} ({len(skipped)} newer skipped)")
