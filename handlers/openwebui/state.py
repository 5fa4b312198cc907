"""Files the openwebui handler keeps under ``<state dir>/<component>/``.

- ``token.json``: the session token from ``token_refresh`` and its expiry (secret, 0600).
- ``signins.json``: when we last signed in, so we stay far below the server's limit.
- ``baseline.json``: the config values as they were before the first change a recovery made
  (default models, connections, banners): ``restore_config`` puts exactly these back.

The directory is 0700 and every file 0600, written atomically (temp file, fsync, rename), so
a crash leaves the old or the new file, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recovery_cli.handlers.util import private_dir

# The config keys (as in GET /api/v1/configs/export) a recovery may change and must restore.
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

    def update_baseline(self, **fields: Any) -> None:
        baseline = self.load_baseline()
        if baseline is not None:
            self._write("baseline.json", {**baseline, **fields})

    def drop_baseline(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "baseline.json").unlink()

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
