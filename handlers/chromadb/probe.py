"""Probing a Chroma server: liveness and readiness over plain HTTP with our own timeouts
(the chromadb HttpClient has none), and the deep probe in a child process with a hard
timeout (Chroma's native code can crash on a damaged segment).

Corruption errors all arrive as ``InternalError``, so they are classified by message.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recovery_cli.handlers.util import run_command

CHILD_MODULE = "recovery_cli.handlers.chromadb.child"
# The request JSON is appended as the last argument.
CHILD_ARGV: tuple[str, ...] = (sys.executable, "-m", CHILD_MODULE)

# Most severe first: the probe reports the worst failure it saw across collections.
SEVERITY = (
    "probe_crashed",
    "sqlite_corrupt",
    "hnsw_load_error",
    "hnsw_data_corrupt",
    "hnsw_graph_corrupt",
    "hnsw_missing_silent",
    "collection_missing",
    "version_mismatch",
    "probe_timeout",
    "not_ready",
    "server_unreachable",
)
# (substring, failure type); first match wins, so the specific ones come first.
MESSAGE_PATTERNS = (
    ("(code: 26)", "sqlite_corrupt"),
    ("(code: 11)", "sqlite_corrupt"),
    ("malformed", "sqlite_corrupt"),
    ("file is not a database", "sqlite_corrupt"),
    ("Error loading hnsw index", "hnsw_load_error"),
    ("Error creating hnsw segment reader", "hnsw_load_error"),
    ("Error deserializing pickle", "hnsw_load_error"),
    ("Nothing found on disk", "hnsw_load_error"),
    ("Failed to apply logs to the hnsw segment writer", "hnsw_load_error"),
    ("Error finding id", "hnsw_data_corrupt"),
    ("Error getting embedding", "hnsw_data_corrupt"),
    ("does not exist", "collection_missing"),
    ("Could not connect to a Chroma server", "server_unreachable"),
)
TRANSPORT_ERRORS = frozenset(
    {
        "ConnectError",
        "ConnectTimeout",
        "ReadTimeout",
        "RemoteProtocolError",
        "ReadError",
        "WriteError",
    }
)


def worst(failure_types: list[str]) -> str:
    return min(failure_types, key=lambda f: SEVERITY.index(f) if f in SEVERITY else len(SEVERITY))


def classify_error(error_type: str, message: str) -> str:
    for needle, failure in MESSAGE_PATTERNS:
        if needle in message:
            return failure
    if error_type == "NotFoundError":
        return "collection_missing"
    if error_type in TRANSPORT_ERRORS:
        return "server_unreachable"
    if error_type in ("KeyError", "TypeError", "AttributeError"):
        # A client and server of different chromadb versions disagree on payload shapes.
        return "version_mismatch"
    return "hnsw_load_error" if error_type == "InternalError" else "not_ready"


@dataclass(frozen=True)
class HttpAnswer:
    """One GET: ``status`` is None when no HTTP answer came back (``error`` says why)."""

    status: int | None
    body: Any = None
    error: str = ""
    timed_out: bool = False


def http_get(url: str, timeout: float) -> HttpAnswer:
    try:
        with urllib.request.urlopen(url, timeout=max(timeout, 0.05)) as response:
            return HttpAnswer(response.status, _json(response.read()))
    except urllib.error.HTTPError as exc:
        body = _json(exc.read())
        exc.close()
        return HttpAnswer(exc.code, body, f"HTTP {exc.code}")
    except TimeoutError as exc:
        return HttpAnswer(None, None, f"no answer within {timeout:.1f}s ({exc})", timed_out=True)
    except urllib.error.URLError as exc:
        timed_out = isinstance(exc.reason, TimeoutError | socket.timeout)
        return HttpAnswer(None, None, str(exc.reason), timed_out=timed_out)
    except (ConnectionError, OSError) as exc:
        return HttpAnswer(None, None, str(exc))


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")[:200]


@dataclass(frozen=True)
class ChildOutcome:
    """The child's JSON answer, or why there is none (``failure_type`` set)."""

    answer: dict[str, Any]
    failure_type: str | None = None
    detail: str = ""


def run_child(request: dict[str, Any], timeout: float) -> ChildOutcome:
    argv = [*CHILD_ARGV, json.dumps(request)]
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    outcome = run_command(argv, timeout=max(timeout, 0.1), env=env)
    if outcome.timed_out:
        return ChildOutcome(
            {}, "probe_timeout", f"chroma client gave no answer within {timeout:.1f}s"
        )
    if outcome.returncode is not None and outcome.returncode < 0:
        signal_number = -outcome.returncode
        return ChildOutcome(
            {},
            "probe_crashed",
            f"chroma client died with signal {signal_number} (likely a corrupt segment)",
        )
    answer = _last_json_line(outcome.output)
    if outcome.returncode != 0 or answer is None:
        tail = outcome.output.strip()[-300:]
        return ChildOutcome(
            {}, "probe_crashed", f"chroma client exited rc {outcome.returncode}: {tail}"
        )
    return ChildOutcome(answer)


def _last_json_line(output: str) -> dict[str, Any] | None:
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            return value if isinstance(value, dict) else None
    return None


@dataclass(frozen=True)
class CollectionState:
    """One collection as the deep probe saw it (``failure_type`` None: healthy)."""

    name: str
    failure_type: str | None
    detail: str
    id: str | None = None
    count: int | None = None
    recall_sampled: int = 0  # records whose own vector was queried and found them again
    graph_checked: bool = False  # the on-disk graph files were read and are consistent


# -- the HNSW graph on disk (hnswlib persisted format, PERSISTENCE_VERSION 1) -----------
# header.bin: version, offsetLevel0, max_elements, cur_element_count, size_data_per_element,
# label_offset, offsetData, maxlevel, enterpoint_node, maxM, maxM0, M, mult, ef_construction.
GRAPH_HEADER = struct.Struct("<iQQQQQQiIQQQdQ")
GRAPH_FORMAT = 1
LINK_LISTS = "link_lists.bin"
# Parsing is pure Python (about 0.9 s for a million records, 8 MiB): past this size the
# check is skipped rather than let it eat the probe's time budget.
GRAPH_CHECK_MAX_BYTES = 8 << 20
GRAPH_SETTLE_SECONDS = 0.3


def hnsw_graph_problems(segment: Path) -> list[str]:
    """What is wrong with the upper layers of a persisted HNSW graph (empty: consistent, or
    not in a format this reads). Queries route around damage here (the bottom layer finds
    the answers), so no Chroma call notices it; writes to the collection then fail."""
    try:
        header = (segment / "header.bin").read_bytes()
        if len(header) != GRAPH_HEADER.size or (segment / LINK_LISTS).stat().st_size > (
            GRAPH_CHECK_MAX_BYTES
        ):
            return []
        blob = (segment / LINK_LISTS).read_bytes()
    except OSError:
        return []  # a missing file is the offline check's finding, not this one's
    fields = GRAPH_HEADER.unpack(header)
    version, count, max_level, max_m = fields[0], fields[3], fields[7], fields[9]
    if version != GRAPH_FORMAT or not 0 < max_m <= 4096:
        return []
    levels, lists = _link_list_layout(blob, count, max_level, max_m * 4 + 4)
    if isinstance(levels, str):
        return [f"{LINK_LISTS}: {levels}"]
    return [f"{LINK_LISTS}: {p}" for p in _link_problems(blob, levels, lists, max_m)[:5]]


def _link_list_layout(
    blob: bytes, count: int, max_level: int, per_level: int
) -> tuple[list[int] | str, list[tuple[int, int]]]:
    """Each element's level and where its lists start; or what breaks the layout."""
    levels: list[int] = []
    lists: list[tuple[int, int]] = []
    position = 0
    for element in range(count):
        if position + 4 > len(blob):
            return f"ends at element {element} of {count}", lists
        (size,) = struct.unpack_from("<I", blob, position)
        position += 4
        if size % per_level or size // per_level > max_level:
            return f"element {element} claims a link list of {size} bytes", lists
        levels.append(size // per_level)
        if size:
            lists.append((element, position))
            position += size
    if position != len(blob):
        return f"{len(blob) - position} bytes past the last element", lists
    return levels, lists


def _link_problems(
    blob: bytes, levels: list[int], lists: list[tuple[int, int]], max_m: int
) -> list[str]:
    problems = []
    per_level = max_m * 4 + 4
    for element, start in lists:
        for level in range(1, levels[element] + 1):
            base = start + (level - 1) * per_level
            used, high = struct.unpack_from("<HH", blob, base)
            slots = struct.unpack_from(f"<{max_m}I", blob, base + 4)
            if used > max_m or high:
                problems.append(f"element {element} level {level}: {used} links of {max_m}")
            elif any(n >= len(levels) or n == element or levels[n] < level for n in slots[:used]):
                problems.append(f"element {element} level {level}: a link to no such node")
            elif any(n >= len(levels) for n in slots[used:]):
                problems.append(f"element {element} level {level}: garbage past its links")
    return problems


def check_graph(segment: Path, settle: float = GRAPH_SETTLE_SECONDS) -> list[str]:
    """Problems that hold still: a server flushing its index while the files are read would
    look like damage, so a finding counts only when a second read, ``settle`` seconds later
    with the files unchanged, finds the same."""
    for _ in range(3):
        before = _signature(segment)
        problems = hnsw_graph_problems(segment)
        if not problems:
            return []
        time.sleep(settle)
        if _signature(segment) == before and hnsw_graph_problems(segment) == problems:
            return problems
    return []


def _signature(segment: Path) -> tuple[tuple[int, int], ...]:
    found = []
    for name in ("header.bin", LINK_LISTS):
        try:
            stat = (segment / name).stat()
        except OSError:
            stat = None
        found.append((stat.st_size, stat.st_mtime_ns) if stat else (-1, -1))
    return tuple(found)
