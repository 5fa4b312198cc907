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
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

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


def probe_collection(client: Any, name: str, k: int) -> dict[str, Any]:
    """count, a query whose result count must equal min(k, count) (a missing index answers
    with fewer results and no error), then vectors read back from across the collection
    (a truncated data file fails only for the records past the cut)."""
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
            report["sampled"] = _read_vectors(collection, count)
    except Exception as exc:
        report.update(_error(exc))
    return report


def _read_vectors(collection: Any, count: int) -> int:
    offsets = sorted({0, count // 4, count // 2, (3 * count) // 4, count - 1})
    for offset in offsets:
        page = collection.get(limit=1, offset=offset, include=["embeddings"])
        if len(page["embeddings"]) != 1:
            raise LookupError(f"Error getting embedding at offset {offset}")
    return len(offsets)


def op_probe(client: Any, request: Request) -> dict[str, Any]:
    k = int(request.get("k", 10))
    return {"collections": [probe_collection(client, name, k) for name in request["collections"]]}


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


OPS: dict[str, Op] = {
    "probe": op_probe,
    "resolve": op_resolve,
    "counts": op_counts,
    "copy": op_copy,
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
