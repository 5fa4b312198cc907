"""A real ``chroma run`` server on a free loopback port, for tests.

Used two ways:
- in-process: ``ChromaServer(path, port).start()`` / ``.stop()`` (fixtures always stop it);
- as the ``service: {method: command}`` of a test config:
  ``python -m tests.support.chroma_server start|stop --path P --port N --pidfile F``, so the
  CLI restarts the server through its own service control, exactly as an operator's would.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.net import free_port, wait_for_port

CHROMA = Path(sys.executable).with_name("chroma")
DIM = 8


@dataclass
class ChromaServer:
    path: Path
    port: int
    pidfile: Path | None = None

    def __post_init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        if self.pidfile is None:
            self.pidfile = self.path.parent / f"chroma-{self.port}.pid"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.path.parent / f"chroma-{self.port}.log"

    def pid(self) -> int | None:
        assert self.pidfile is not None
        if self._proc is not None:
            if self._proc.poll() is None:
                return self._proc.pid
            self._proc = None  # reaped; someone else (the CLI's service) may have restarted it
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def start(self, timeout: float = 30.0) -> None:
        assert self.pidfile is not None
        if self.pid() is not None:
            return
        argv = [str(CHROMA), "run", "--path", str(self.path), "--host", "127.0.0.1"]
        argv += ["--port", str(self.port)]
        with open(self.log, "ab") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        self._proc = proc  # kept so that stop() reaps it
        self.pidfile.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:  # e.g. a corrupt sqlite file: chroma panics at start
                raise TimeoutError(f"chroma exited with rc {proc.returncode}; see {self.log}")
            with contextlib.suppress(TimeoutError):
                wait_for_port(self.port, 0.2)
                return
        self.stop()
        raise TimeoutError(f"chroma not listening on {self.port} after {timeout}s")

    def stop(self, timeout: float = 15.0) -> None:
        pid = self.pid()
        if pid is None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        if not self._wait_gone(timeout):
            self.signal(signal.SIGKILL)
            self._wait_gone(5)

    def signal(self, signum: int) -> None:
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self._wait_gone(5)

    def _wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                return True
            time.sleep(0.05)
        return False

    def command(self, action: str) -> list[str]:
        """The argv a test config's ``service:`` block uses to start or stop this server."""
        assert self.pidfile is not None
        return [
            sys.executable, "-m", "tests.support.chroma_server", action,
            "--path", str(self.path), "--port", str(self.port), "--pidfile", str(self.pidfile),
        ]  # fmt: skip


def component(server: ChromaServer, **fields: Any) -> dict[str, Any]:
    """A test config's chromadb component for ``server``, its service the core's command
    control over this module; ``fields`` (chain, on_failure, strategies, ...) are added."""
    return {
        "kind": "chromadb",
        "settings": {
            "url": server.url,
            "persist_directory": str(server.path),
            "collections": ["docs"],
        },
        "service": {
            "method": "command",
            "start": server.command("start"),
            "stop": server.command("stop"),
            "ready_timeout_seconds": 20,
        },
        **fields,
    }


def handler_for(server: ChromaServer, state: Path, probe_timeout: float = 20) -> Any:
    """A ChromaHandler for ``server``'s ``docs`` collection, its state under ``state``."""
    from recovery_cli.handlers.base import ComponentContext
    from recovery_cli.handlers.chromadb.handler import ChromaHandler

    context = ComponentContext(
        name="chromadb",
        settings={
            "url": server.url,
            "persist_directory": str(server.path),
            "collections": ["docs"],
        },
        strategy_params={},
        state_dir=state,
        environ={},
        probe_timeout=probe_timeout,
    )
    return ChromaHandler(context)


def vectors(n: int, dim: int = DIM, seed: int = 7) -> list[list[float]]:
    """Deterministic explicit embeddings (the default embedding function needs internet)."""
    import random

    rng = random.Random(seed)
    return [[rng.random() for _ in range(dim)] for _ in range(n)]


QUERY = [0.5] * DIM


def _client(port: int) -> Any:
    import chromadb
    from chromadb.config import Settings

    return chromadb.HttpClient(
        host="127.0.0.1", port=port, settings=Settings(anonymized_telemetry=False)
    )


def _seed_here(port: int, name: str, n: int, batch: int = 500) -> None:
    data = vectors(n)
    collection = _client(port).create_collection(name, embedding_function=None)
    for start in range(0, n, batch):
        ids = [f"id{i}" for i in range(start, min(n, start + batch))]
        collection.add(
            ids=ids,
            embeddings=data[start : start + batch],
            documents=[f"document {i}" for i in ids],
            metadatas=[{"n": int(i[2:])} for i in ids],
        )


def _add_here(port: int, name: str, start: int, n: int) -> None:
    data = vectors(start + n, seed=11)[start:]
    collection = _client(port).get_collection(name, embedding_function=None)
    ids = [f"late{i}" for i in range(start, start + n)]
    collection.add(
        ids=ids,
        embeddings=data,
        documents=[f"late document {i}" for i in ids],
        metadatas=[{"late": int(i[4:])} for i in ids],
    )


def _ids_here(port: int, name: str) -> list[str]:
    collection = _client(port).get_collection(name, embedding_function=None)
    return sorted(collection.get(include=[])["ids"])


def _query_here(port: int, name: str, k: int) -> list[str]:
    collection = _client(port).get_collection(name, embedding_function=None)
    result = collection.query(query_embeddings=[QUERY], n_results=k, include=[])
    return list(result["ids"][0])


def _support(*args: str) -> str:
    # The chromadb HttpClient leaves sockets open; keep it out of the pytest process.
    argv = [sys.executable, "-m", "tests.support.chroma_server", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {done.stderr[-2000:]}")
    return done.stdout


def seed(port: int, name: str, n: int) -> None:
    """A collection of ``n`` records with ids ``id0..``, documents, metadata, explicit vectors."""
    _support("seed", "--port", str(port), "--name", name, "--n", str(n))


def add_late(port: int, name: str, n: int, start: int = 0) -> list[str]:
    """Add ``n`` records ``late<start>..`` (vectors, documents, metadata) to ``name``."""
    _support("add", "--port", str(port), "--name", name, "--n", str(n), "--start", str(start))
    return [f"late{i}" for i in range(start, start + n)]


def all_ids(port: int, name: str) -> list[str]:
    import json

    return list(json.loads(_support("ids", "--port", str(port), "--name", name)))


def fixed_query(port: int, name: str, k: int = 5) -> list[str]:
    """Ids, in order, of the test suite's fixed query."""
    import json

    return list(json.loads(_support("query", "--port", str(port), "--name", name, "--n", str(k))))


def retain_wal(path: Path) -> None:
    """Turn off WAL auto-purge in a stopped persist directory (what the playbook tells
    operators to do so that an index can be rebuilt without a snapshot)."""
    import json
    import sqlite3

    db = sqlite3.connect(path / "chroma.sqlite3")
    try:
        row = db.execute("SELECT config_json_str FROM embeddings_queue_config").fetchone()
        config = json.loads(row[0])
        config["automatically_purge"] = False
        with db:
            db.execute(
                "UPDATE embeddings_queue_config SET config_json_str = ?", (json.dumps(config),)
            )
    finally:
        db.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


class ServerControl:
    """A ServiceControl over a ChromaServer, for handler-level tests (the CLI tests use the
    core's command service with ``ChromaServer.command``)."""

    method = "command"

    def __init__(self, server: ChromaServer) -> None:
        self.server = server
        self.calls: list[str] = []

    def restart(self, timeout: float) -> Any:
        self.calls.append("restart")
        self.server.stop(timeout)
        return self._start(timeout)

    def stop(self, timeout: float) -> Any:
        from recovery_cli.handlers.base import StrategyResult

        self.calls.append("stop")
        self.server.stop(timeout)
        return StrategyResult.success("stopped")

    def start(self, timeout: float) -> Any:
        self.calls.append("start")
        return self._start(timeout)

    def _start(self, timeout: float) -> Any:
        from recovery_cli.handlers.base import StrategyResult

        try:
            self.server.start(timeout)
        except TimeoutError as exc:
            return StrategyResult.failure("start_failed", str(exc))
        return StrategyResult.success("started")

    def preflight(self) -> list[Any]:
        return []


RECORDS = 2000


@dataclass(frozen=True)
class Seeded:
    path: Path  # a persist directory holding the ``docs`` collection
    query: list[str]  # what a fixed query returns from it


def build_persist(path: Path, keep_wal: bool) -> list[str]:
    """Seed ``docs`` into a new persist directory; returns the fixed query's answer."""
    server = ChromaServer(path, free_port())
    server.start()
    try:
        if keep_wal:
            server.stop()
            retain_wal(path)
            server.start()
        seed(server.port, "docs", RECORDS)
        return fixed_query(server.port, "docs")
    finally:
        server.stop()


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="chroma_server")
    parser.add_argument("action", choices=["start", "stop", "seed", "query", "add", "ids"])
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--path", type=Path)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pidfile", type=Path)
    parser.add_argument("--name", default="docs")
    parser.add_argument("--n", type=int, default=5)
    args = parser.parse_args(argv)
    if args.action == "seed":
        _seed_here(args.port, args.name, args.n)
        return 0
    if args.action == "add":
        _add_here(args.port, args.name, args.start, args.n)
        return 0
    if args.action == "ids":
        import json

        print(json.dumps(_ids_here(args.port, args.name)))
        return 0
    if args.action == "query":
        import json

        print(json.dumps(_query_here(args.port, args.name, args.n)))
        return 0
    server = ChromaServer(args.path, args.port, args.pidfile)
    try:
        server.start() if args.action == "start" else server.stop()
    except TimeoutError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
