"""``flush_corrupted`` and ``restore_flushed``: clear leaked keys without TTL, undoably.

Only keys matching configured patterns are touched, found with SCAN (never KEYS). ``expire``
mode gives them a TTL (``EXPIRE … NX``, nothing is lost now); ``delete`` mode first writes
every key's DUMP and TTL to a fsynced backup, then deletes each key through a script that
keeps it when it changed since the backup or gained a TTL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from recovery_cli.handlers.base import LOST, WOULD_LOSE, Loss, StrategyResult
from recovery_cli.handlers.redis.backup import Backup, BackupEntry, record_outcome, write_backup
from recovery_cli.handlers.redis.settings import FlushParams

if TYPE_CHECKING:
    from pathlib import Path

    import redis
    from redis.client import Pipeline

T = TypeVar("T")
BATCH = 500
SHOWN_KEYS = 20

# Delete KEYS[1] only if it still has no TTL and its DUMP equals the backed-up one (ARGV[1]).
COMPARE_AND_DELETE = """
local current = redis.call('DUMP', KEYS[1])
if not current then return 0 end
if redis.call('PTTL', KEYS[1]) ~= -1 then return -1 end
if current ~= ARGV[1] then return -2 end
return redis.call('UNLINK', KEYS[1])
"""
SCRIPT_OUTCOMES = {0: "gone", -1: "ttl_set", -2: "changed", 1: "deleted"}


@dataclass(frozen=True)
class Scan:
    keys: tuple[bytes, ...]  # keys without a TTL, in SCAN order
    scanned: int
    complete: bool  # False: stopped early (over max_keys or out of time)


def find_keys_without_ttl(
    client: redis.Redis, params: FlushParams, remaining: Callable[[], float]
) -> Scan:
    """SCAN each pattern; keep keys whose PTTL is -1. Stops past ``max_keys`` or when time
    runs out, so a huge keyspace never turns into an unbounded step."""
    seen: dict[bytes, None] = {}
    for pattern in params.patterns:
        for key in client.scan_iter(match=pattern, count=params.scan_count, _type=params.key_type):
            seen[key] = None
            if len(seen) % BATCH == 0 and remaining() <= 1.0:
                return Scan(_no_ttl(client, list(seen)), len(seen), False)
    return Scan(_no_ttl(client, list(seen)), len(seen), True)


def pipelined(
    client: redis.Redis,
    items: Sequence[T],
    queue: Callable[[Pipeline, T], object],
    raise_on_error: bool = True,
) -> list[tuple[T, Any]]:
    """Each item with its reply, ``BATCH`` commands per round trip (no MULTI: a transaction
    would block the server for the whole batch). ``queue`` adds one command per item."""
    paired: list[tuple[T, Any]] = []
    for start in range(0, len(items), BATCH):
        batch = items[start : start + BATCH]
        pipe = client.pipeline(transaction=False)
        for item in batch:
            queue(pipe, item)
        paired += zip(batch, pipe.execute(raise_on_error=raise_on_error), strict=True)
    return paired


def _no_ttl(client: redis.Redis, keys: list[bytes]) -> tuple[bytes, ...]:
    replies = pipelined(client, keys, lambda pipe, key: pipe.pttl(key))
    return tuple(key for key, pttl in replies if pttl == -1)


def expire_keys(client: redis.Redis, keys: tuple[bytes, ...], ttl: int) -> int:
    """Give each key a TTL unless it has one already (NX, Redis 7+); returns how many got one."""
    replies = pipelined(client, keys, lambda pipe, key: pipe.expire(key, ttl, nx=True))
    return sum(1 for _, done in replies if done)


# DUMP and PTTL of one key in one reply, so the backup never pairs a payload with a TTL
# read at another moment.
DUMP_WITH_TTL = "return {redis.call('DUMP', KEYS[1]), redis.call('PTTL', KEYS[1])}"


def dump_keys(client: redis.Redis, keys: tuple[bytes, ...]) -> list[BackupEntry]:
    sha = client.script_load(DUMP_WITH_TTL)
    replies = pipelined(client, keys, lambda pipe, key: pipe.evalsha(sha, 1, key))
    return [
        BackupEntry(key, int(pttl), bytes(payload))
        for key, (payload, pttl) in replies
        if payload and pttl == -1  # gone, or given a TTL, since the scan
    ]


def delete_backed_up(client: redis.Redis, entries: list[BackupEntry]) -> dict[bytes, str]:
    sha = client.script_load(COMPARE_AND_DELETE)
    replies = pipelined(client, entries, lambda pipe, e: pipe.evalsha(sha, 1, e.key, e.dump))
    return {entry.key: SCRIPT_OUTCOMES.get(int(code), f"code {code}") for entry, code in replies}


def flush(
    client: redis.Redis,
    params: FlushParams,
    backup_dir: Callable[[], Path],
    header: Mapping[str, Any],
    remaining: Callable[[], float],
    dry_run: bool,
    now: float,
) -> StrategyResult:
    scan = find_keys_without_ttl(client, params, remaining)
    shown = ", ".join(show_key(k) for k in scan.keys[:SHOWN_KEYS])
    counts: dict[str, Any] = {"scanned": scan.scanned, "without_ttl": len(scan.keys)}
    refusal = _refusal(scan, params, counts)
    if refusal is not None:
        return refusal
    if dry_run:
        verb = (
            f"set a {params.ttl_seconds}s TTL on"
            if params.mode == "expire"
            else "back up and delete"
        )
        return StrategyResult.success(
            f"dry run: would {verb} {len(scan.keys)} keys: {shown}",
            **counts,
            **{WOULD_LOSE: _would_lose(scan, params).to_data()},
        )
    if params.mode == "expire":
        changed = expire_keys(client, scan.keys, params.ttl_seconds)
        return StrategyResult.success(
            f"set a {params.ttl_seconds}s TTL on {changed} keys", expired=changed, **counts
        )
    return _delete(client, scan.keys, backup_dir, header, counts, now)


def _would_lose(scan: Scan, params: FlushParams) -> Loss:
    """The keys the flush would remove (or give a TTL), bound by patterns, mode and limit:
    leaked cache keys keep coming, so an approval never binds the keys of one moment."""
    count = len(scan.keys)
    patterns = list(params.patterns)
    if params.mode == "expire":
        summary = f"{count} keys matching {patterns} expire {params.ttl_seconds}s after the step"
        undo = "give them a TTL of -1 (PERSIST) before they expire"
    else:
        summary = f"{count} keys without a TTL matching {patterns}, deleted after a backup"
        undo = "recovery recover COMPONENT --strategy restore_flushed (the backup the step names)"
    binds = {"patterns": patterns, "mode": params.mode, "max_keys": params.max_keys}
    keys = tuple(show_key(k) for k in scan.keys)
    return Loss(summary, count, keys, undo=undo, binds=binds)


def _refusal(scan: Scan, params: FlushParams, counts: dict[str, Any]) -> StrategyResult | None:
    """Stop before changing anything when the scan found too much or did not finish."""
    if len(scan.keys) > params.max_keys:
        return StrategyResult.failure(
            "too_many_keys",
            f"{len(scan.keys)} keys without TTL match {list(params.patterns)}, over max_keys "
            f"{params.max_keys}; nothing was changed (raise max_keys or narrow the patterns)",
            **counts,
        )
    if not scan.complete:
        return StrategyResult.failure(
            "scan_incomplete",
            "the step ran out of time while scanning; nothing was changed",
            retryable=True,
            **counts,
        )
    return None


def _delete(
    client: redis.Redis,
    keys: tuple[bytes, ...],
    backup_dir: Callable[[], Path],
    header: Mapping[str, Any],
    counts: Mapping[str, Any],
    now: float,
) -> StrategyResult:
    entries = dump_keys(client, keys)
    path = write_backup(backup_dir(), {**header, "keys": len(entries)}, entries, now)
    outcome = delete_backed_up(client, entries)
    record_outcome(path, outcome)
    tally = {what: sum(1 for v in outcome.values() if v == what) for what in set(outcome.values())}
    kept = len(entries) - tally.get("deleted", 0)
    detail = (
        f"deleted {tally.get('deleted', 0)} keys, kept {kept} changed since the backup or given "
        f"a TTL; backup {path.name} (undo with restore_flushed)"
    )
    undo = f"recovery recover COMPONENT --strategy restore_flushed (backup {path.name})"
    kept_in = Loss(
        f"nothing: the {len(entries)} deleted keys are in the backup", 0, where=str(path), undo=undo
    )
    return StrategyResult.success(
        detail,
        backup=path.name,
        backup_path=str(path),
        outcome=tally,
        **counts,
        **{LOST: kept_in.to_data()},
    )


def show_key(key: bytes) -> str:
    text = key.decode("utf-8", "backslashreplace")
    return text if len(text) <= 80 else text[:77] + "..."


def restore(
    client: redis.Redis, backup: Backup, replace_existing: bool, dry_run: bool
) -> StrategyResult:
    """RESTORE each deleted key with its TTL. A key the application has written again since
    the flush is newer than the backup and is kept, unless ``replace_existing``."""
    entries = backup.to_restore()
    if dry_run:
        shown = ", ".join(show_key(e.key) for e in entries[:SHOWN_KEYS])
        return StrategyResult.success(
            f"dry run: would restore {len(entries)} keys from {backup.path.name}: {shown}",
            keys=len(entries),
        )
    outcome: dict[str, Any] = {"restored": 0, "kept_existing": 0, "failed": 0}
    errors: list[str] = []
    replies = pipelined(
        client,
        entries,
        lambda pipe, e: pipe.restore(e.key, max(e.pttl, 0), e.dump, replace=replace_existing),
        raise_on_error=False,
    )
    for entry, reply in replies:
        _count_restore(entry, reply, outcome, errors)
    return _restore_result(backup, outcome, errors)


def _count_restore(
    entry: BackupEntry, reply: object, outcome: dict[str, Any], errors: list[str]
) -> None:
    if not isinstance(reply, Exception):
        outcome["restored"] += 1
    elif str(reply).startswith("BUSYKEY"):
        outcome["kept_existing"] += 1
    else:
        outcome["failed"] += 1
        errors.append(f"{show_key(entry.key)}: {reply}")


def _restore_result(backup: Backup, outcome: dict[str, Any], errors: list[str]) -> StrategyResult:
    detail = (
        f"restored {outcome['restored']} keys from {backup.path.name}; "
        f"{outcome['kept_existing']} already existed and were kept"
    )
    if errors:
        return StrategyResult.failure(
            "restore_failed",
            f"{detail}; {outcome['failed']} failed: {'; '.join(errors[:5])}",
            **outcome,
        )
    return StrategyResult.success(detail, backup=backup.path.name, **outcome)
