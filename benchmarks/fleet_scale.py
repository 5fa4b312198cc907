"""The PostgreSQL backend at scale: 1,000,000 audit rows in a private PostgreSQL.

    .venv/bin/python benchmarks/fleet_scale.py [records]

Starts a private PostgreSQL (as the machine's `postgres` user when run as root), writes a
hash-chained JSONL trail of RECORDS records over 30 days, loads it with `recovery state import`
(timed), then times, as processes: `history --component redis --last 24h --limit 50`,
`history --stats`, `metrics` (each against the same trail on the file backend too), and
in-process, the decision overhead per `recover` beyond the probe with the postgres backend
(a healthy component; an unhealthy one refused by its cooldown).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import median_seconds, timed

from recovery_cli.config import load_config
from recovery_cli.environment import Environment
from recovery_cli.handler_calls import Components
from recovery_cli.orchestrator import Orchestrator, RecoverRequest
from recovery_cli.pg_store import PgStore
from tests.support.postgres import running_postgres
from tests.support.trail import write_trail

RUNS = 50
CONFIG = """version: 1
state: {{backend: {backend}, dsn_env: BENCH_DSN}}
defaults: {{cooldown_seconds: 600, max_attempts_per_hour: 1000}}
components:
  redis:
    kind: command
    scope: fleet
    settings: {{probe: ["true"]}}
    chain: [fix]
    strategies: {{fix: {{params: {{command: ["true"]}}}}}}
  app:
    kind: command
    scope: fleet
    settings: {{probe: ["false"]}}
    chain: [fix]
    strategies: {{fix: {{params: {{command: ["true"]}}}}}}
"""


def decision_overhead(config_path: Path, state: Path, dsn: str) -> tuple[float, float, float]:
    config = load_config(config_path)
    env = Environment(environ={"USER": "bench", "BENCH_DSN": dsn}, host="bench-host")

    def orchestrator() -> Orchestrator:
        store = PgStore(state, env, config, dsn)
        return Orchestrator(config, store, env, Components(config, env, state))

    orchestrator().recover(
        RecoverRequest(components=("app",), trigger="cron")
    )  # fails: cooldown from now
    probe = timed(Components(config, env, state).handler("redis").probe, RUNS)
    healthy = timed(
        lambda: orchestrator().recover(RecoverRequest(components=("redis",), trigger="cron")), RUNS
    )
    blocked = timed(
        lambda: orchestrator().recover(RecoverRequest(components=("app",), trigger="cron")), RUNS
    )
    return probe, healthy - probe, blocked - probe


def main() -> None:
    records = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp, running_postgres() as server:
        root = Path(tmp)
        dsn = server.create_database()
        state = root / "state"
        state.mkdir(mode=0o700)
        started = time.perf_counter()
        write_trail(state / "audit", records, 30, time.time())
        print(f"generated {records:,} records over 30 days in {time.perf_counter() - started:.1f}s")
        env = {**os.environ, "BENCH_DSN": dsn, "RECOVERY_HOST": "bench-host"}
        configs = {}
        for backend in ("file", "postgres"):
            configs[backend] = root / f"{backend}.yml"
            configs[backend].write_text(CONFIG.format(backend=backend))

        def cli(backend: str, *args: str) -> list[str]:
            base = [sys.executable, "-m", "recovery_cli", "--config", str(configs[backend])]
            return [*base, "--state-dir", str(state), *args]

        subprocess.run(cli("postgres", "state", "migrate"), env=env, check=True)
        started = time.perf_counter()
        subprocess.run(cli("postgres", "state", "import"), env=env, check=True)
        print(f"state import: {time.perf_counter() - started:.1f}s")
        subprocess.run(["vacuumdb", "--analyze", "-d", dsn], capture_output=True, check=False)
        recent = ("history", "--component", "redis", "--last", "24h", "--limit", "50")
        rows = [
            ("history -c redis --last 24h --limit 50", recent, 7),
            ("history --stats (30 days)", ("history", "--stats"), 3),
            ("metrics", ("metrics",), 3),
        ]
        print(f"{'command':42} {'file':>9} {'postgres':>9}")
        for label, args, runs in rows:
            file_s = median_seconds(cli("file", *args), runs, env)
            pg_s = median_seconds(cli("postgres", *args), runs, env)
            print(f"{label:42} {file_s:8.3f}s {pg_s:8.3f}s")
        probe, healthy, blocked = decision_overhead(configs["postgres"], state, dsn)
        print(f"probe alone (command `true`)                  {probe * 1000:6.2f} ms")
        print(f"recover (postgres), healthy, beyond the probe {healthy * 1000:6.2f} ms")
        print(f"recover (postgres), refused by cooldown       {blocked * 1000:6.2f} ms")


if __name__ == "__main__":
    main()
