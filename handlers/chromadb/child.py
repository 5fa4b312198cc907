"""Chroma client work that runs in a child process.

Chroma's native code can abort or segfault on a damaged segment, so every call that makes
Chroma read a collection runs here, under a hard timeout chosen by the parent
(``chromadb_probe.run_child``). The parent passes one JSON request as ``argv[1]`` and reads one
JSON object from stdout; exceptions are reported as ``{"error": ..., "error_type": ...}`` so
the parent classifies them by message.

Run as ``python -m recovery_cli.handlers.chromadb.child '<json>'``.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from recovery_cli.handlers.chromadb.offline import VECTOR_SCOPE, sqlite_uri
from recovery_cli.handlers.chromadb.probe import check_graph

Request = Mapping[str, Any]
Op = Callable[[Any, Request], dict[str, Any]]


def _client(request: Request) -> Any:
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    tenant = request.get("tenant", "default_tenant")
    database = request.get("database", "default_database")
    if request.get("path") and not request.get("host"):
        return chromadb.PersistentClient(
            path=request["path"], settings=settings, tenant=tenant, database=database
        )
    return chromadb.HttpClient(
        host=request["host"],
        port=int(request["port"]),
        ssl=bool(request.get("ssl", False)),
        settings=settings,
        tenant=tenant,
        database=database,
    )


def _error(exc: BaseException) -> dict[str, Any]:
    return {"error": str(exc)[:1500], "error_type": type(exc).__name__}


def _open(client: Any, name: str) -> Any:
    # No embedding function: the probe only sends explicit vectors, and the default one
    # would try to download a model.
    return client.get_collection(name, embedding_function=None)


def probe_collection(
    client: Any, name: str, k: int, persist_directory: str | None = None
) -> dict[str, Any]:
    """count, a query whose result count must equal min(k, count) (a missing index answers
    with fewer results and no error), then the self-recall sample and, given the persist
    directory, the graph files of the collection's vector segment."""
    report: dict[str, Any] = {"name": name}
    try:
        collection = _open(client, name)
        report["id"] = str(collection.id)
        report["count"] = count = collection.count()
        report["expected"] = expected = min(k, count)
        report["returned"] = 0
        if count == 0:
            return report
        vector = [0.5] * int(collection._model.dimension or 1)
        result = collection.query(query_embeddings=[vector], n_results=expected, include=[])
        report["returned"] = len(result["ids"][0])
        if report["returned"] == expected:
            report["recall"] = self_recall(collection, count)
            if persist_directory:
                report["graph"] = graph_report(Path(persist_directory), report["id"])
    except Exception as exc:
        report.update(_error(exc))
    return report


# Records sampled for the self-recall check, spread evenly over the collection.
RECALL_SAMPLE = 20
# Each sampled vector is queried for this many neighbours: its own record must be among
# them. More than one because records with identical vectors tie at distance 0.
RECALL_K = 3
# A result this close to the query is a duplicate of the sampled record, tied with it.
TIE_DISTANCE = 1e-6


def self_recall(collection: Any, count: int) -> dict[str, Any]:
    """Read back the vectors of records spread over the collection (a truncated data file
    fails only past the cut) and query each: an intact graph leads a record's own vector
    back to it. One batched query, so the cost does not grow with the collection."""
    ids, vectors = [], []
    for offset in sample_offsets(count, RECALL_SAMPLE):
        page = collection.get(limit=1, offset=offset, include=["embeddings"])
        if len(page["embeddings"]) != 1:
            raise LookupError(f"Error getting embedding at offset {offset}")
        ids.append(page["ids"][0])
        vectors.append([float(x) for x in page["embeddings"][0]])
    result = collection.query(
        query_embeddings=vectors, n_results=min(RECALL_K, count), include=["distances"]
    )
    missed = [
        own
        for own, found, distances in zip(ids, result["ids"], result["distances"], strict=True)
        if own not in found and not all(d <= TIE_DISTANCE for d in distances)
    ]
    return {"sampled": len(ids), "missed": missed}


def sample_offsets(count: int, size: int) -> list[int]:
    """Up to ``size`` offsets spread evenly over ``count`` records, first and last included."""
    if count <= size:
        return list(range(count))
    return sorted({(i * (count - 1)) // (size - 1) for i in range(size)})


def graph_report(persist_directory: Path, collection_id: str) -> dict[str, Any]:
    """The graph check of the collection's vector segment; ``segment`` None when it has none
    on disk yet (everything still in the WAL)."""
    segment = vector_segment(persist_directory, collection_id)
    if segment is None or not (persist_directory / segment).is_dir():
        return {"segment": None, "problems": []}
    return {"segment": segment, "problems": check_graph(persist_directory / segment)}


def vector_segment(persist_directory: Path, collection_id: str) -> str | None:
    db = sqlite3.connect(sqlite_uri(persist_directory), uri=True, timeout=2)
    try:
        row = db.execute(
            "SELECT id FROM segments WHERE collection = ? AND scope = ?",
            (collection_id, VECTOR_SCOPE),
        ).fetchone()
    finally:
        db.close()
    return str(row[0]) if row else None


def op_probe(client: Any, request: Request) -> dict[str, Any]:
    k = int(request.get("k", 10))
    directory = request.get("persist_directory")
    return {
        "collections": [
            probe_collection(client, name, k, directory) for name in request["collections"]
        ]
    }


def op_resolve(client: Any, request: Request) -> dict[str, Any]:
    """Collection name -> id as the server sees it now (None when missing)."""
    ids: dict[str, str | None] = {}
    for name in request["collections"]:
        try:
            ids[name] = str(_open(client, name).id)
        except Exception as exc:
            if type(exc).__name__ != "NotFoundError":
                raise
            ids[name] = None
    return {"ids": ids}


def op_counts(client: Any, request: Request) -> dict[str, Any]:
    return {"counts": {name: _open(client, name).count() for name in request["collections"]}}


def op_copy(client: Any, request: Request) -> dict[str, Any]:
    """Copy every record (vectors included) into a fresh collection, then swap the names.
    The old collection is kept under ``keep_as``; its id is reported so nothing is lost."""
    name, keep_as, batch = request["name"], request["keep_as"], int(request.get("batch_size", 500))
    source = _open(client, name)
    target = client.create_collection(
        f"{name}-rebuild-{int(time.time())}",
        metadata=source.metadata or None,
        embedding_function=None,
    )
    copied = _copy_batches(source, target, batch)
    if target.count() != source.count():
        client.delete_collection(target.name)
        return {"error": f"copy incomplete: {target.count()} of {source.count()} records"}
    source.modify(name=keep_as)
    target.modify(name=name)
    return {"copied": copied, "old_id": str(source.id), "new_id": str(target.id)}


def _copy_batches(source: Any, target: Any, batch: int) -> int:
    offset = 0
    include = ["embeddings", "documents", "metadatas"]
    while True:
        page = source.get(limit=batch, offset=offset, include=include)
        if not page["ids"]:
            return offset
        target.add(
            ids=page["ids"],
            embeddings=page["embeddings"],
            documents=page["documents"],
            metadatas=page["metadatas"],  # None entries pass through as they are
        )
        offset += len(page["ids"])


def op_replay(client: Any, request: Request) -> dict[str, Any]:
    """Apply recorded changes, in order, to collections of the (restored) store: the
    ``changes`` file holds ``{collection: {create, changes: [{id, op, embedding, metadata,
    document}]}}`` (``create``: the collection is not in the store yet). Consecutive changes
    of one kind go in one batch. Reports the ids applied."""
    with open(request["changes"], encoding="utf-8") as handle:
        work: dict[str, dict[str, Any]] = json.load(handle)
    applied: dict[str, list[str]] = {}
    for name, entry in work.items():
        if entry.get("create"):
            collection = client.get_or_create_collection(name, embedding_function=None)
        else:
            collection = _open(client, name)
        done: list[str] = []
        for op, batch in _runs(entry["changes"], int(request.get("batch_size", 500))):
            _apply(collection, op, batch)
            done += [c["id"] for c in batch]
        applied[name] = done
    return {"applied": applied}


def _runs(changes: list[dict[str, Any]], size: int) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    batch: list[dict[str, Any]] = []
    for change in changes:
        if batch and (change["op"] != batch[0]["op"] or len(batch) >= size):
            yield batch[0]["op"], batch
            batch = []
        batch.append(change)
    if batch:
        yield batch[0]["op"], batch


def _apply(collection: Any, op: str, batch: list[dict[str, Any]]) -> None:
    ids = [c["id"] for c in batch]
    if op == "delete":
        collection.delete(ids=ids)
        return
    fields: dict[str, Any] = {}
    if all(c["embedding"] is not None for c in batch):
        fields["embeddings"] = [c["embedding"] for c in batch]
    if any(c["metadata"] for c in batch):
        fields["metadatas"] = [c["metadata"] or None for c in batch]
    if any(c["document"] is not None for c in batch):
        fields["documents"] = [c["document"] for c in batch]
    (collection.upsert if op == "upsert" else collection.update)(ids=ids, **fields)


OPS: dict[str, Op] = {
    "probe": op_probe,
    "resolve": op_resolve,
    "counts": op_counts,
    "copy": op_copy,
    "replay": op_replay,
}


def main(argv: list[str]) -> int:
    request = json.loads(argv[1])
    try:
        client = _client(request)
        result = OPS[request["op"]](client, request)
    except Exception as exc:
        result = {**_error(exc), "stage": "client"}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
