"""The ``settings`` and strategy ``params`` of a ``kind: chromadb`` component.

Validation here is cheap and does no I/O: it runs at config load time.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recovery_cli.handlers.base import SettingsError, number_errors

SETTING_KEYS = frozenset(
    {"url", "persist_directory", "collections", "tenant", "database", "probe_k",
     "heartbeat_timeout_seconds", "expected_version", "snapshot_directory"}
)  # fmt: skip
PARAM_KEYS: dict[str, frozenset[str]] = {
    "query_retry": frozenset({"attempts", "initial_delay", "max_delay"}),
    "collection_reload": frozenset({"restart"}),
    "snapshot": frozenset({"keep", "require_healthy"}),
    "snapshot_rollback": frozenset({"verify_counts"}),
    "index_rebuild": frozenset({"paths", "batch_size", "collections"}),
}
REBUILD_PATHS = ("copy", "wal", "snapshot")
MAX_BATCH = 5461  # the server's max_batch_size on 1.5.x


@dataclass(frozen=True)
class ChromaSettings:
    url: str | None
    persist_directory: Path | None
    collections: tuple[str, ...]
    tenant: str = "default_tenant"
    database: str = "default_database"
    probe_k: int = 10
    heartbeat_timeout: float = 2.0
    expected_version: str | None = None
    snapshot_directory: Path | None = None

    @classmethod
    def parse(cls, settings: Mapping[str, Any]) -> ChromaSettings:
        persist = settings.get("persist_directory")
        snapshots = settings.get("snapshot_directory")
        return cls(
            url=str(settings["url"]).rstrip("/") if settings.get("url") else None,
            persist_directory=Path(persist) if persist else None,
            collections=tuple(str(c) for c in settings.get("collections") or ()),
            tenant=str(settings.get("tenant", "default_tenant")),
            database=str(settings.get("database", "default_database")),
            probe_k=int(settings.get("probe_k", 10)),
            heartbeat_timeout=float(settings.get("heartbeat_timeout_seconds", 2.0)),
            expected_version=settings.get("expected_version"),
            snapshot_directory=Path(snapshots) if snapshots else None,
        )

    @property
    def embedded(self) -> bool:
        """No server: the persist directory is opened with a PersistentClient."""
        return self.url is None

    def client_request(self) -> dict[str, Any]:
        """How the child process reaches Chroma (HttpClient, or PersistentClient on a path)."""
        base: dict[str, Any] = {"tenant": self.tenant, "database": self.database}
        if self.url is None:
            return {**base, "path": str(self.persist_directory)}
        parts = urllib.parse.urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return {**base, "host": parts.hostname, "port": port, "ssl": parts.scheme == "https"}


def validate(
    settings: Mapping[str, Any], params: Mapping[str, Mapping[str, Any]]
) -> list[SettingsError]:
    errors = [
        SettingsError(f"settings.{k}", "unknown setting") for k in settings if k not in SETTING_KEYS
    ]
    errors += _url_errors(settings.get("url"))
    if not settings.get("url") and not settings.get("persist_directory"):
        errors.append(
            SettingsError("settings", "needs 'url' (a server) or 'persist_directory' (embedded)")
        )
    for key in ("persist_directory", "snapshot_directory"):
        value = settings.get(key)
        if value is not None and not (isinstance(value, str) and value.startswith("/")):
            errors.append(SettingsError(f"settings.{key}", "must be an absolute path"))
    errors += _collection_errors(settings.get("collections"))
    errors += _number_errors(
        "settings", settings, {"probe_k": (1, 1000), "heartbeat_timeout_seconds": (0.1, 60)}
    )
    for strategy, values in params.items():
        errors += _param_errors(strategy, values)
    return errors


def _url_errors(url: Any) -> list[SettingsError]:
    if url is None:
        return []
    try:
        parts = urllib.parse.urlsplit(str(url))
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed [IPv6 bracket
        valid = False
    if not valid:
        return [
            SettingsError("settings.url", "must be an http(s) URL such as http://127.0.0.1:8000")
        ]
    return []


def _collection_errors(collections: Any) -> list[SettingsError]:
    if collections is None:
        return []
    if not isinstance(collections, list) or not all(isinstance(c, str) for c in collections):
        return [SettingsError("settings.collections", "must be a list of collection names")]
    bad = [c for c in collections if not 3 <= len(c) <= 512]
    if bad:
        return [
            SettingsError("settings.collections", f"names need 3 to 512 characters: {bad[0]!r}")
        ]
    return []


def _number_errors(
    prefix: str, values: Mapping[str, Any], bounds: Mapping[str, tuple[float, float]]
) -> list[SettingsError]:
    errors = []
    for key, (low, high) in bounds.items():
        if values.get(key) is not None:
            errors += number_errors(f"{prefix}.{key}", values[key], low, high)
    return errors


def _param_errors(strategy: str, values: Mapping[str, Any]) -> list[SettingsError]:
    prefix = f"strategies.{strategy}.params"
    known = PARAM_KEYS.get(strategy, frozenset())
    errors = [SettingsError(f"{prefix}.{k}", "unknown parameter") for k in values if k not in known]
    errors += _number_errors(
        prefix,
        values,
        {"attempts": (1, 20), "initial_delay": (0, 60), "max_delay": (0, 600), "keep": (1, 1000),
         "batch_size": (1, MAX_BATCH)},
    )  # fmt: skip
    paths = values.get("paths")
    if paths is not None and (
        not isinstance(paths, list) or not all(p in REBUILD_PATHS for p in paths)
    ):
        errors.append(
            SettingsError(f"{prefix}.paths", f"must be a list drawn from {list(REBUILD_PATHS)}")
        )
    return errors
