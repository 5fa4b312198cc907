"""The ``settings`` and strategy ``params`` of a ``kind: chromadb`` component: pydantic
models, checked at config load time (cheap, no I/O).

Unlike the other kinds, ``key: null`` means the key's default here, as it always has.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, PlainValidator

from recovery_cli.handlers.settings_models import (
    NULL_IS_DEFAULT,
    Params,
    Problem,
    SettingsModel,
    invalid,
    kind_validator,
    number,
)

REBUILD_PATHS = ("copy", "wal", "snapshot")
MAX_BATCH = 5461  # the server's max_batch_size on 1.5.x
WHOLE = AfterValidator(int)  # any number in bounds, used as a whole one (1.5 -> 1, as always)


def _http_url(value: Any) -> str | None:
    if value is None:
        return None
    try:
        parts = urllib.parse.urlsplit(str(value))
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed [IPv6 bracket
        valid = False
    if not valid:
        raise invalid("must be an http(s) URL such as http://127.0.0.1:8000")
    return str(value).rstrip("/")


def _absolute_path(value: Any) -> Path | None:
    if value is None:
        return None
    if not (isinstance(value, str) and value.startswith("/")):
        raise invalid("must be an absolute path")
    return Path(value)


def _collection_names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise invalid("must be a list of collection names")
    bad = [c for c in value if not 3 <= len(c) <= 512]
    if bad:
        raise invalid(f"names need 3 to 512 characters: {bad[0]!r}")
    return tuple(value)


def _version(value: Any) -> str | None:
    return str(value) if value else None  # unset, empty or 0: no version check


class ChromaSettings(SettingsModel):
    unknown_key = "unknown setting"

    url: Annotated[str | None, PlainValidator(_http_url)] = None
    persist_directory: Annotated[Path | None, PlainValidator(_absolute_path)] = None
    collections: Annotated[tuple[str, ...], PlainValidator(_collection_names)] = ()
    tenant: Annotated[str, PlainValidator(str)] = "default_tenant"
    database: Annotated[str, PlainValidator(str)] = "default_database"
    probe_k: Annotated[int, number(1, 1000), WHOLE, NULL_IS_DEFAULT] = 10
    heartbeat_timeout: Annotated[float, number(0.1, 60), NULL_IS_DEFAULT] = Field(
        2.0, alias="heartbeat_timeout_seconds"
    )
    expected_version: Annotated[str | None, PlainValidator(_version)] = None
    snapshot_directory: Annotated[Path | None, PlainValidator(_absolute_path)] = None

    @classmethod
    def cross_checks(cls, data: Mapping[Any, Any]) -> list[Problem]:
        if data.get("url") or data.get("persist_directory"):
            return []
        return [((), "needs 'url' (a server) or 'persist_directory' (embedded)")]

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


Truthy = Annotated[bool, PlainValidator(bool)]  # any value, read for its truth as always


class QueryRetryParams(Params):
    attempts: Annotated[int, number(1, 20), WHOLE, NULL_IS_DEFAULT] = 3
    initial_delay: Annotated[float, number(0, 60), NULL_IS_DEFAULT] = 0.5
    max_delay: Annotated[float, number(0, 600), NULL_IS_DEFAULT] = 5.0


class CollectionReloadParams(Params):
    restart: Truthy = True


class SnapshotParams(Params):
    keep: Annotated[int, number(1, 1000), WHOLE, NULL_IS_DEFAULT] = 5
    require_healthy: Truthy = True


class SnapshotRollbackParams(Params):
    verify_counts: Truthy = True
    # re-add what the WAL of the replaced store holds since the snapshot
    replay: Truthy = True


def _rebuild_paths(value: Any) -> tuple[str, ...]:
    if value is not None and (
        not isinstance(value, list) or not all(p in REBUILD_PATHS for p in value)
    ):
        raise invalid(f"must be a list drawn from {list(REBUILD_PATHS)}")
    return tuple(value or REBUILD_PATHS)  # none or empty: every path


def _rebuild_collections(value: Any) -> tuple[str, ...] | None:
    if value is not None and (
        not isinstance(value, list) or not all(isinstance(c, str) for c in value)
    ):
        raise invalid("must be a list of collection names")
    return tuple(value) if value else None  # none or empty: the damaged ones


class IndexRebuildParams(Params):
    paths: Annotated[tuple[str, ...], PlainValidator(_rebuild_paths)] = REBUILD_PATHS
    batch_size: Annotated[int, number(1, MAX_BATCH), WHOLE, NULL_IS_DEFAULT] = 500
    collections: Annotated[tuple[str, ...] | None, PlainValidator(_rebuild_collections)] = None


PARAMS: dict[str, type[SettingsModel]] = {
    "query_retry": QueryRetryParams,
    "collection_reload": CollectionReloadParams,
    "snapshot": SnapshotParams,
    "snapshot_rollback": SnapshotRollbackParams,
    "index_rebuild": IndexRebuildParams,
}


# every problem with a component's settings and its strategies' params (a strategy the kind
# does not have takes no params)
validate = kind_validator(ChromaSettings, PARAMS, Params)
