"""What data safety costs a Chroma component: the deep probe before and after the graph
checks, and what a rollback's loss accounting and replay add.

    .venv/bin/python benchmarks/chroma_data_safety.py --records 2000 --late 30 --base ba71b53

1. Deep probe: the probe child of this tree and of ``--base`` (read with ``git show``), run
   side by side against one private ``chroma run`` on a free loopback port: the child's wall
   time (a process start, as every probe pays) and its probe work alone (mean of 20 in one
   process).
2. Rollback: ``snapshot_rollback`` of a store with ``--late`` records written after its
   snapshot: the dry run (the approval's plan: both sqlite files read and compared), then
   the real run (stop, restore, start, replay, count), against the seconds a rollback
   without replay takes (``replay: false``) on a copy of the same store.

Everything runs in a temporary directory; nothing else is touched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recovery_cli.handlers.base import StrategyContext  # noqa: E402
from tests.support.chroma_server import (  # noqa: E402
    ChromaServer,
    ServerControl,
    add_late,
    handler_for,
    seed,
)
from tests.support.net import free_port  # noqa: E402

CHILD = "handlers/chromadb/child.py"
INNER = """
import importlib.util, json, sys, time
spec = importlib.util.spec_from_file_location("child", sys.argv[1])
child = importlib.util.module_from_spec(spec); spec.loader.exec_module(child)
request = json.loads(sys.argv[2]); client = child._client(request)
child.op_probe(client, request)
started = time.perf_counter()
for _ in range(20):
    child.op_probe(client, request)
print((time.perf_counter() - started) / 20 * 1000)
"""


def probe_costs(
    server: ChromaServer, persist: Path, child: Path, rounds: int
) -> tuple[float, float]:
    request = json.dumps(
        {
            "host": "127.0.0.1",
            "port": server.port,
            "op": "probe",
            "collections": ["docs"],
            "k": 10,
            "persist_directory": str(persist),
        }
    )
    walls = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run([sys.executable, str(child), request], capture_output=True, check=True)
        walls.append(time.perf_counter() - started)
    inner = subprocess.run(
        [sys.executable, "-c", INNER, str(child), request],
        capture_output=True,
        text=True,
        check=True,
    )
    return statistics.median(walls) * 1000, float(inner.stdout.strip().splitlines()[-1])


def run(handler, server: ChromaServer, strategy: str, **params: object) -> tuple[float, dict]:
    dry_run = bool(params.pop("dry_run", False))
    ctx = StrategyContext(
        component=handler.context,
        params=params,
        failure_type=None,
        timeout=600,
        dry_run=dry_run,
        service=ServerControl(server),
        deadline=time.monotonic() + 600,
    )
    started = time.perf_counter()
    result = handler.strategies()[strategy](ctx)
    assert result.ok, result.detail
    return time.perf_counter() - started, dict(result.data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--late", type=int, default=30)
    parser.add_argument("--base", default="HEAD", help="the revision whose probe child to compare")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        before = root / "child_before.py"
        before.write_bytes(
            subprocess.run(
                ["git", "show", f"{args.base}:{CHILD}"], cwd=ROOT, capture_output=True, check=True
            ).stdout
        )
        server = ChromaServer(root / "persist", free_port())
        server.start()
        try:
            seed(server.port, "docs", args.records)
            print(f"deep probe of {args.records} records ({args.rounds} child runs each):")
            for label, child in ((args.base, before), ("this tree", ROOT / CHILD)):
                wall, work = probe_costs(server, root / "persist", child, args.rounds)
                print(f"  {label:>10}: child wall median {wall:7.0f} ms, probe work {work:6.1f} ms")
            handler = handler_for(server, root / "state", probe_timeout=60)
            run(handler, server, "snapshot")
            add_late(server.port, "docs", args.late)
        finally:
            server.stop()
        shutil.copytree(root / "persist", root / "copy")
        shutil.copytree(root / "state", root / "copy-state")
        server.start()
        try:
            plan_s, plan = run(handler, server, "snapshot_rollback", dry_run=True)
            real_s, done = run(handler, server, "snapshot_rollback")
        finally:
            server.stop()
        bare = ChromaServer(root / "copy", free_port())
        bare.start()
        try:
            bare_s, _ = run(
                handler_for(bare, root / "copy-state", 60), bare, "snapshot_rollback", replay=False
            )
        finally:
            bare.stop()
        print(f"rollback, {args.late} records written after the snapshot:")
        print(
            f"  plan (dry run, compare both sqlite files): {plan_s:6.2f} s, would lose "
            f"{plan['would_lose']['count']}"
        )
        print(
            f"  rollback with replay: {real_s:6.2f} s, replayed {done['replayed']}, "
            f"lost {done['lost']['count']}"
        )
        print(f"  rollback without replay (replay: false): {bare_s:6.2f} s")


if __name__ == "__main__":
    main()
