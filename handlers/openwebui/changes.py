"""The config values a recovery changes, written and restored as a three-way merge.

Per key there are three values: the one before the recovery changed it (``Change.before``),
the one it set (``Change.set``) and the live one. A restore puts a key back only while the
live value is still the one the recovery set; a key a person changed since is a conflict,
left alone unless the restore is told to override. Keys the recovery never set (another
connection, a person's banner, the model order) are not touched at all.

Every write is a read-modify-write of the live form: OpenWebUI's config endpoints overwrite
the whole form (an omitted field is written as empty).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from recovery_cli.handlers.openwebui.checks import (
    Finding,
    Owner,
    Session,
    default_models,
    reply_finding,
)
from recovery_cli.handlers.openwebui.state import Change

DEFAULT_MODELS = "DEFAULT_MODELS"
BANNER_PREFIX = "banner:"
CONNECTION_PREFIX = "connection:"
ENABLE_SUFFIX = ".enable"

Verdict = Literal["restore", "conflict", "settled", "gone"]


def banner_key(banner_id: str) -> str:
    return f"{BANNER_PREFIX}{banner_id}"


def connection_key(index: int) -> str:
    return f"{CONNECTION_PREFIX}{index}{ENABLE_SUFFIX}"


@dataclass(frozen=True)
class LiveConfig:
    """The three forms a recovery writes, as the server has them now."""

    models: Mapping[str, Any]  # GET /api/v1/configs/models
    connections: Mapping[str, Any]  # GET /openai/config
    banners: Sequence[Mapping[str, Any]]  # GET /api/v1/configs/banners

    def connection_index(self, change: Change) -> int | None:
        """Where the connection a change names is now: its index if the URL still sits
        there, else wherever that URL moved; ``None`` when a person removed it."""
        urls = [str(u) for u in self.connections.get("OPENAI_API_BASE_URLS") or []]
        index = int(change.key.removeprefix(CONNECTION_PREFIX).removesuffix(ENABLE_SUFFIX))
        if change.url is None or (index < len(urls) and urls[index] == change.url):
            return index if index < len(urls) else None
        return urls.index(change.url) if change.url in urls else None

    def connection_config_key(self, index: int) -> str:
        configs = self.connections.get("OPENAI_API_CONFIGS") or {}
        urls = self.connections.get("OPENAI_API_BASE_URLS") or []
        url = str(urls[index]) if index < len(urls) else ""
        return url if str(index) not in configs and url in configs else str(index)

    def value(self, change: Change) -> tuple[bool, Any]:
        """(present, live value) of the key ``change`` names."""
        if change.key == DEFAULT_MODELS:
            return True, self.models.get(DEFAULT_MODELS)
        if change.key.startswith(BANNER_PREFIX):
            banner_id = change.key.removeprefix(BANNER_PREFIX)
            return True, next((b for b in self.banners if b.get("id") == banner_id), None)
        index = self.connection_index(change)
        if index is None:
            return False, None
        configs = self.connections.get("OPENAI_API_CONFIGS") or {}
        own = configs.get(self.connection_config_key(index))
        # None: no "enable" of its own (OpenWebUI then treats it as on)
        return True, own.get("enable") if isinstance(own, Mapping) else None


def matches(expected: Any, live: Any) -> bool:
    """A live value equals one we know; a banner by the fields we gave it (the server may
    add its own)."""
    if isinstance(expected, Mapping) and isinstance(live, Mapping):
        return all(live.get(k) == v for k, v in expected.items())
    return bool(expected == live)


def read_live(session: Session) -> LiveConfig | Finding:
    models = default_models(session)
    if isinstance(models, Finding):
        return models
    connections = session.api.get("/openai/config")
    if not (connections.ok and isinstance(connections.body, dict)):
        return reply_finding(connections, "GET /openai/config")
    banners = session.api.get("/api/v1/configs/banners")
    if not (banners.ok and isinstance(banners.body, list)):
        return reply_finding(banners, "GET /api/v1/configs/banners")
    own = [b for b in banners.body if isinstance(b, dict)]
    return LiveConfig(models, connections.body, own)


# -- the three-way decision ----------------------------------------------------------------


@dataclass(frozen=True)
class Judged:
    change: Change
    verdict: Verdict
    live: Any

    def describe(self) -> str:
        """A conflict for a person: what the recovery set, what is there now."""
        return (
            f"{self.change.key} (recovery set {_short(self.change.set)}, now {_short(self.live)})"
        )


def judge(change: Change, live: LiveConfig) -> Judged:
    present, value = live.value(change)
    if not present:
        return Judged(change, "gone", None)
    if _same(change, change.set, value):
        return Judged(change, "restore", value)
    if _same(change, change.before, value):
        return Judged(change, "settled", value)
    return Judged(change, "conflict", value)


def _same(change: Change, expected: Any, live: Any) -> bool:
    if change.key.startswith(CONNECTION_PREFIX):  # no "enable" of its own means on
        return (expected is None or expected) == (live is None or live)
    return matches(expected, live)


@dataclass(frozen=True)
class RestorePlan:
    """What a restore does with each recorded change."""

    restore: list[Judged] = field(default_factory=list)  # still the recovery's: put back
    conflicts: list[Judged] = field(default_factory=list)  # a person changed them since
    overridden: list[Judged] = field(default_factory=list)  # conflicts put back anyway
    settled: list[Judged] = field(default_factory=list)  # already back, or the key is gone

    @property
    def writes(self) -> list[Judged]:
        return [*self.restore, *self.overridden]

    @property
    def conflict_keys(self) -> list[str]:
        return sorted(j.change.key for j in self.conflicts)

    @property
    def overridden_keys(self) -> list[str]:
        return sorted(j.change.key for j in self.overridden)


def plan_restore(changes: Iterable[Change], live: LiveConfig, override: bool) -> RestorePlan:
    plan = RestorePlan()
    for change in changes:
        judged = judge(change, live)
        if judged.verdict == "restore":
            plan.restore.append(judged)
        elif judged.verdict == "conflict":
            (plan.overridden if override else plan.conflicts).append(judged)
        else:
            plan.settled.append(judged)
    return plan


# -- writing -------------------------------------------------------------------------------


def write_values(
    session: Session, live: LiveConfig, values: Sequence[tuple[Change, Any]]
) -> Finding | None:
    """Give each key its value: one read-modify-write per form, only for forms touched."""
    for writer in (_write_models, _write_connections, _write_banners):
        problem = writer(session, live, values)
        if problem is not None:
            return problem
    return None


def _write_models(
    session: Session, live: LiveConfig, values: Sequence[tuple[Change, Any]]
) -> Finding | None:
    mine = [value for change, value in values if change.key == DEFAULT_MODELS]
    if not mine:
        return None
    return _post(session, "/api/v1/configs/models", {**live.models, DEFAULT_MODELS: mine[-1]})


def _write_connections(
    session: Session, live: LiveConfig, values: Sequence[tuple[Change, Any]]
) -> Finding | None:
    configs = dict(live.connections.get("OPENAI_API_CONFIGS") or {})
    touched = False
    for change, value in values:
        if not change.key.startswith(CONNECTION_PREFIX):
            continue
        index = live.connection_index(change)
        if index is None:
            continue
        key = live.connection_config_key(index)
        own = {k: v for k, v in (configs.get(key) or {}).items() if k != "enable"}
        if value is not None:
            own["enable"] = value
        if own:
            configs[key] = own
        else:  # the entry only held what the recovery wrote: give back its absence
            configs.pop(key, None)
        touched = True
    if not touched:
        return None
    body = {**live.connections, "OPENAI_API_CONFIGS": configs}
    return _post(session, "/openai/config/update", body)


def _write_banners(
    session: Session, live: LiveConfig, values: Sequence[tuple[Change, Any]]
) -> Finding | None:
    mine = {
        c.key.removeprefix(BANNER_PREFIX): v for c, v in values if c.key.startswith(BANNER_PREFIX)
    }
    if not mine:
        return None
    kept = [b for b in live.banners if b.get("id") not in mine]
    banners = [*kept, *(v for v in mine.values() if isinstance(v, Mapping))]
    return _post(session, "/api/v1/configs/banners", {"banners": banners})


def _post(session: Session, path: str, body: Any) -> Finding | None:
    reply = session.api.post(path, body)
    return None if reply.ok else reply_finding(reply, f"POST {path}")


def change_config(
    handler: Owner, session: Session, by: str, values: Mapping[str, Any], urls: Mapping[str, str]
) -> Finding | None:
    """A recovery's own change: each key recorded (set, before) first, then written. A
    record without its write is harmless (the key still holds ``before``: nothing to undo);
    a write without its record could never be undone."""
    live = read_live(session)
    if isinstance(live, Finding):
        return live
    earlier = handler.files.load_changes()
    planned = []
    for key, value in values.items():
        change = Change(key, value, None, by, handler.context.now(), urls.get(key))
        change = replace(change, before=_before(change, earlier.get(key), live))
        handler.files.record_change(change)
        planned.append((change, value))
    return write_values(session, live, planned)


def _before(change: Change, earlier: Change | None, live: LiveConfig) -> Any:
    """The value a restore gives back. A key the recovery already changed, still holding
    the value it set, keeps its first ``before``: the value from before the incident, not
    from before the recovery's second write."""
    _, value = live.value(change)
    if earlier is not None and _same(earlier, earlier.set, value):
        return earlier.before
    return value


def disabled_by_recovery(changes: Iterable[Change]) -> list[int]:
    """The indexes of the connections a recovery switched off."""
    return sorted(
        int(c.key.removeprefix(CONNECTION_PREFIX).removesuffix(ENABLE_SUFFIX))
        for c in changes
        if c.key.startswith(CONNECTION_PREFIX) and c.set is False
    )


def _short(value: Any) -> str:
    if isinstance(value, Mapping):
        return repr(value.get("title") or value.get("id") or "banner")
    return "(none)" if value is None else repr(value)
