"""Probing a Chroma server: liveness and readiness over plain HTTP with our own timeouts
(the chromadb HttpClient has none), and the deep probe in a child process with a hard
timeout (Chroma's native code can crash on a damaged segment).

Corruption errors all arrive as ``InternalError``, so they are classified by message.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
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
