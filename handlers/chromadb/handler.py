"""The ``chromadb`` handler: a Chroma server (``url``) or an embedded persist directory.

A heartbeat is not a health check for Chroma: a damaged vector index leaves the heartbeat
green, and a missing one silently returns fewer results. So the probe goes on to a deep
probe of every configured collection, in a child process with a hard timeout, and to
read-only checks of the persist directory whenever the server is down.

Failure types: server_unreachable, not_ready, collection_missing, hnsw_load_error,
hnsw_data_corrupt, hnsw_graph_corrupt, hnsw_missing_silent, sqlite_corrupt, probe_timeout,
probe_crashed, version_mismatch.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recovery_cli.handlers.base import (
    BaseHandler,
    Check,
    ComponentContext,
    Health,
    ProbeResult,
)
from recovery_cli.handlers.chromadb.kind import KIND
from recovery_cli.handlers.chromadb.offline import inspect_directory
from recovery_cli.handlers.chromadb.probe import (
    CollectionState,
    classify_error,
    http_get,
    run_child,
    worst,
)
from recovery_cli.handlers.chromadb.settings import ChromaSettings
from recovery_cli.handlers.util import trim

DEGRADED_ONLY = frozenset({"version_mismatch"})


@dataclass(frozen=True)
class DeepProbe:
    """The deep probe's findings, per collection; ``failure_type`` set when the probe itself
    failed (timeout, crash, client could not connect)."""

    collections: tuple[CollectionState, ...] = ()
    failure_type: str | None = None
    detail: str = ""
    seconds: float = 0.0
    extra: Mapping[str, float] = field(default_factory=dict)

    def damaged(self) -> list[CollectionState]:
        return [c for c in self.collections if c.failure_type is not None]


class ChromaHandler(BaseHandler):
    kind = "chromadb"
    spec = KIND

    def __init__(self, context: ComponentContext) -> None:
        super().__init__(context)
        self.settings = ChromaSettings.model_validate(context.settings)

    # -- files of this component -------------------------------------------------------

    @property
    def own_dir(self) -> Path:
        return self.context.state_dir / self.context.name

    @property
    def snapshot_root(self) -> Path:
        return self.settings.snapshot_directory or self.own_dir / "snapshots"

    # -- probe ---------------------------------------------------------------------------

    def probe(self) -> ProbeResult:
        return self.probe_until(time.monotonic() + self.context.probe_timeout)

    def probe_until(self, deadline: float) -> ProbeResult:
        if self.settings.embedded:
            return self._probe_embedded(deadline)
        server = self.server_state(deadline)
        if server is not None:
            return server
        version = self._version_problem()
        deep = self.deep_probe(deadline)
        result = self._deep_result(deep)
        if result.healthy and version:
            return ProbeResult.degraded("version_mismatch", version)
        return result

    def server_state(self, deadline: float) -> ProbeResult | None:
        """Liveness and readiness over HTTP; None when the server answers and is ready."""
        assert self.settings.url is not None
        budget = min(self.settings.heartbeat_timeout, _left(deadline))
        beat = http_get(f"{self.settings.url}/api/v2/heartbeat", budget)
        if beat.timed_out:
            return ProbeResult.down("probe_timeout", f"heartbeat: {beat.error} (server hung?)")
        if beat.status is None:
            return self._server_down(beat.error)
        if beat.status != 200:
            return ProbeResult.down("not_ready", f"heartbeat answered HTTP {beat.status}")
        ready = http_get(f"{self.settings.url}/api/v2/healthcheck", min(budget, _left(deadline)))
        if ready.timed_out:
            return ProbeResult.down("probe_timeout", f"healthcheck: {ready.error}")
        flags = ready.body if isinstance(ready.body, dict) else {}
        if ready.status != 200 or not all(flags.values()):
            return ProbeResult.down(
                "not_ready", f"healthcheck: HTTP {ready.status} {trim(str(ready.body), 200)}"
            )
        return None

    def _server_down(self, error: str) -> ProbeResult:
        detail = f"server unreachable at {self.settings.url}: {error}"
        directory = self.settings.persist_directory
        if directory is None or not directory.exists():
            return ProbeResult.down("server_unreachable", detail)
        offline = inspect_directory(directory, self.settings.collections)
        if offline.failure_type is None:
            return ProbeResult.down(
                "server_unreachable", f"{detail}; offline check: {offline.detail}"
            )
        return ProbeResult.down(offline.failure_type, f"{detail}; offline check: {offline.detail}")

    def _probe_embedded(self, deadline: float) -> ProbeResult:
        directory = self.settings.persist_directory
        assert directory is not None
        if not directory.is_dir():
            return ProbeResult.down(
                "collection_missing", f"persist directory {directory} does not exist"
            )
        # Checked before any client opens it: a PersistentClient would create a fresh empty
        # database over a missing sqlite file.
        offline = inspect_directory(directory, self.settings.collections)
        if offline.failure_type is not None:
            return ProbeResult.down(offline.failure_type, f"offline check: {offline.detail}")
        return self._deep_result(self.deep_probe(deadline))

    def _version_problem(self) -> str:
        from recovery_cli.handlers.chromadb.snapshot import chromadb_version

        expected = self.settings.expected_version
        installed = chromadb_version()
        if expected and installed != expected:
            return f"chromadb {installed} is installed, the config expects {expected}"
        return ""

    def deep_probe(self, deadline: float) -> DeepProbe:
        if not self.settings.collections:
            return DeepProbe(detail="no collections configured for a deep probe")
        directory = self.settings.persist_directory
        request = {
            **self.settings.client_request(),
            "op": "probe",
            "collections": list(self.settings.collections),
            "k": self.settings.probe_k,
            "persist_directory": str(directory) if directory else None,
        }
        started = time.monotonic()
        outcome = run_child(request, _left(deadline))
        seconds = time.monotonic() - started
        if outcome.failure_type is not None:
            return DeepProbe(
                failure_type=outcome.failure_type, detail=outcome.detail, seconds=seconds
            )
        if "error" in outcome.answer:
            failure = classify_error(outcome.answer.get("error_type", ""), outcome.answer["error"])
            return DeepProbe(failure_type=failure, detail=outcome.answer["error"], seconds=seconds)
        states = tuple(_collection_state(report) for report in outcome.answer["collections"])
        return DeepProbe(states, seconds=seconds)

    def _deep_result(self, deep: DeepProbe) -> ProbeResult:
        if deep.failure_type is not None:
            return ProbeResult.down(deep.failure_type, deep.detail)
        damaged = deep.damaged()
        metrics = {
            "collections": float(len(deep.collections)),
            "records": float(sum(c.count or 0 for c in deep.collections)),
            "deep_probe_seconds": round(deep.seconds, 3),
            "recall_sampled": float(sum(c.recall_sampled for c in deep.collections)),
            "graph_checked": float(sum(c.graph_checked for c in deep.collections)),
        }
        if not damaged:
            self._remember_ids(deep)
            return ProbeResult.ok(
                deep.detail or f"{len(deep.collections)} collections answer", metrics
            )
        failure = worst([c.failure_type for c in damaged if c.failure_type])
        detail = "; ".join(f"{c.name}: {c.failure_type}: {c.detail}" for c in damaged)
        if failure in DEGRADED_ONLY:
            return ProbeResult.degraded(failure, detail)
        return ProbeResult(Health.DOWN, failure, trim(detail), metrics)

    # -- collection ids, remembered so a reload can say when one changed ----------------

    @property
    def ids_file(self) -> Path:
        return self.own_dir / "collection_ids.json"

    def remembered_ids(self) -> dict[str, str]:
        try:
            value = json.loads(self.ids_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}

    def remember_ids(self, ids: Mapping[str, str]) -> None:
        from recovery_cli.handlers.chromadb.snapshot import ensure_private_dir

        try:
            ensure_private_dir(self.own_dir)
            temporary = self.ids_file.with_suffix(f".tmp{os.getpid()}")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(dict(ids), handle)
            os.replace(temporary, self.ids_file)
        except OSError:
            pass  # a memory aid for reports only; never worth failing a probe over

    def _remember_ids(self, deep: DeepProbe) -> None:
        ids = {c.name: c.id for c in deep.collections if c.id}
        if ids and ids != self.remembered_ids() and not self.context.read_only:
            self.remember_ids(ids)

    # -- strategies and preflight -------------------------------------------------------

    def preflight(self, strategy: str) -> list[Check]:
        from recovery_cli.handlers.chromadb.preflight import preflight

        return preflight(self, strategy)


def _collection_state(report: Mapping[str, Any]) -> CollectionState:
    name = str(report.get("name"))
    cid, count = report.get("id"), report.get("count")
    if "error" in report:
        failure = classify_error(str(report.get("error_type", "")), str(report["error"]))
        return CollectionState(name, failure, str(report["error"]), cid, count)
    returned, expected = report.get("returned", 0), report.get("expected", 0)
    if returned < expected:
        detail = (
            f"query returned {returned} of {expected} results, count {count}: vector index missing"
        )
        return CollectionState(name, "hnsw_missing_silent", detail, cid, count)
    recall, graph = report.get("recall") or {}, report.get("graph") or {}
    damage = _graph_damage(recall, graph)
    if damage:
        return CollectionState(name, "hnsw_graph_corrupt", damage, cid, count)
    return CollectionState(
        name,
        None,
        f"{count} records",
        cid,
        count,
        recall_sampled=int(recall.get("sampled", 0)),
        graph_checked=bool(graph.get("segment")),
    )


def _graph_damage(recall: Mapping[str, Any], graph: Mapping[str, Any]) -> str:
    found = []
    missed = list(recall.get("missed") or ())
    if missed:
        sampled = recall.get("sampled", 0)
        found.append(
            f"self-recall: {len(missed)} of {sampled} sampled records not found by their own "
            f"vector ({', '.join(map(str, missed[:5]))})"
        )
    problems = list(graph.get("problems") or ())
    if problems:
        found.append(f"segment {graph.get('segment')}: {'; '.join(problems[:3])}")
    return "; ".join(found)


def _left(deadline: float) -> float:
    return max(0.05, deadline - time.monotonic())
