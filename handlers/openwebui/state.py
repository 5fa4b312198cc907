"""Files the openwebui handler keeps under ``<state dir>/<component>/``.

- ``token.json``: the session token from ``token_refresh`` and its expiry (secret, 0600).
- ``signins.json``: when we last signed in, so we stay far below the server's limit.
- ``baseline.json``: the config values as they were before the first change a recovery made
  (default models, connections, banners): the incident's backup, for a person.
- ``changes.json``: each key a recovery changed, the value it set and the value before it.
  ``restore_config`` puts a key back only while it still holds the value the recovery set
  (a three-way merge against the live config); a key a person changed since is theirs.

The directory is 0700 and every file 0600, written atomically (temp file, fsync, rename), so
a crash leaves the old or the new file, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recovery_cli.handlers.util import private_dir

# The config keys (as in GET /api/v1/configs/export) kept in the baseline: every form a
# recovery writes to, whole, so a person can see what was there before the incident.
MODEL_KEYS = {
    "DEFAULT_MODELS": "ui.default_models",
    "DEFAULT_PINNED_MODELS": "ui.default_pinned_models",
    "MODEL_ORDER_LIST": "ui.model_order_list",
    "DEFAULT_MODEL_METADATA": "models.default_metadata",
    "DEFAULT_MODEL_PARAMS": "models.default_params",
}
CONNECTION_KEYS = {
    "ENABLE_OPENAI_API": "openai.enable",
    "OPENAI_API_BASE_URLS": "openai.api_base_urls",
    "OPENAI_API_CONFIGS": "openai.api_configs",
}
BANNER_KEY = "ui.banners"
# API keys of the upstream connections are deliberately not kept: they are never changed.
BASELINE_KEYS = (*MODEL_KEYS.values(), *CONNECTION_KEYS.values(), BANNER_KEY)


@dataclass(frozen=True)
class Change:
    """One config value a recovery changed: ``key`` names it (``DEFAULT_MODELS``,
    ``banner:<id>``, ``connection:<index>.enable``), ``set`` is the value written, ``before``
    the value it replaced, ``by`` the strategy, ``url`` the connection's URL (its identity
    when indexes shift)."""

    key: str
    set: Any
    before: Any
    by: str
    at: float = 0.0
    url: str | None = None

    def to_data(self) -> dict[str, Any]:
        data = {"set": self.set, "before": self.before, "by": self.by, "at": self.at}
        return data if self.url is None else {**data, "url": self.url}

    @classmethod
    def from_data(cls, key: str, data: Mapping[str, Any]) -> Change:
        url = data.get("url")
        return cls(
            key,
            data.get("set"),
            data.get("before"),
            str(data.get("by", "")),
            float(data.get("at") or 0),
            str(url) if url is not None else None,
        )


@dataclass(frozen=True)
class StoredToken:
    token: str
    expires_at: float | None
    obtained_at: float

    def usable(self, now: float, margin: float = 30.0) -> bool:
        return self.expires_at is None or self.expires_at > now + margin


class HandlerFiles:
    def __init__(
        self,
        state_dir: Path,
        component: str,
        read_only: bool = False,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.dir = state_dir / component
        self.read_only = read_only  # status and dry runs keep nothing on disk
        self.now = now  # the wall clock the records are stamped with

    # -- token ---------------------------------------------------------------------------------

    def load_token(self) -> StoredToken | None:
        data = self._read("token.json")
        if not isinstance(data, dict) or not isinstance(data.get("token"), str):
            return None
        expires = data.get("expires_at")
        return StoredToken(
            data["token"],
            float(expires) if isinstance(expires, int | float) else None,
            float(data.get("obtained_at") or 0),
        )

    def save_token(self, token: str, expires_at: float | None) -> None:
        self._write(
            "token.json", {"token": token, "expires_at": expires_at, "obtained_at": self.now()}
        )

    def token_path(self) -> Path:
        return self.dir / "token.json"

    # -- sign-in budget ------------------------------------------------------------------------

    def signins(self) -> dict[str, Any]:
        data = self._read("signins.json")
        return data if isinstance(data, dict) else {}

    def record_signin(self, now: float, window: float, rate_limited: bool = False) -> None:
        data = self.signins()
        attempts = [
            t for t in data.get("attempts", []) if isinstance(t, int | float) and t > now - window
        ]
        record: dict[str, Any] = {"attempts": [*attempts, now]}
        blocked = data.get("blocked_until")
        if rate_limited:
            blocked = now + window
        if isinstance(blocked, int | float) and blocked > now:
            record["blocked_until"] = blocked
        self._write("signins.json", record)

    # -- baseline ------------------------------------------------------------------------------

    def load_baseline(self) -> dict[str, Any] | None:
        data = self._read("baseline.json")
        return data if isinstance(data, dict) and isinstance(data.get("config"), dict) else None

    def save_baseline_once(self, export: dict[str, Any], taken_by: str) -> bool:
        """Keep the config as it was before the FIRST change: a later step of the same
        incident must not overwrite it with an already-changed config. True if written."""
        if self.load_baseline() is not None:
            return False
        config = {key: export[key] for key in BASELINE_KEYS if key in export}
        self._write(
            "baseline.json", {"taken_at": self.now(), "taken_by": taken_by, "config": config}
        )
        return True

    def drop_baseline(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "baseline.json").unlink()

    # -- changes -------------------------------------------------------------------------------

    def load_changes(self) -> dict[str, Change]:
        data = self._read("changes.json")
        records = data.get("changes") if isinstance(data, dict) else None
        if not isinstance(records, dict):
            return {}
        return {
            key: Change.from_data(key, record)
            for key, record in records.items()
            if isinstance(record, dict) and "set" in record
        }

    def record_change(self, change: Change) -> None:
        """Note a change (before it is written), replacing any earlier one of that key."""
        self._save_changes({**self.load_changes(), change.key: change})

    def forget_changes(self, keys: Iterable[str]) -> None:
        drop = set(keys)
        changes = self.load_changes()
        if drop & changes.keys():
            self._save_changes({k: c for k, c in changes.items() if k not in drop})

    def _save_changes(self, changes: Mapping[str, Change]) -> None:
        if not changes:
            with contextlib.suppress(FileNotFoundError):
                if not self.read_only:
                    (self.dir / "changes.json").unlink()
            return
        self._write("changes.json", {"changes": {k: c.to_data() for k, c in changes.items()}})

    # -- plumbing ------------------------------------------------------------------------------

    def writable(self) -> bool:
        """For preflight: can we create our files? Checks without creating anything."""
        probe = self.dir
        while not probe.exists():
            probe = probe.parent
        return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)

    def _read(self, name: str) -> Any:
        try:
            return json.loads((self.dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _write(self, name: str, data: Any) -> None:
        if self.read_only:
            return
        private_dir(self.dir, parents=True)
        target = self.dir / name
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(data, sort_keys=True).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
