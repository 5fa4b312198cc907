"""Decision overhead: the orchestrator's own time per `recover` beyond the probe, with a
1,000,000-record audit trail present (target < 20 ms).

Measured in-process: a healthy component (probe, then the end-of-run bookkeeping) and an
unhealthy one refused by its cooldown gate (window read from the audit trail, `blocked`
record written). The probe's own time, measured separately, is subtracted.
Usage: python benchmarks/decision_overhead.py [records]"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from _common import generate_audit, timed, write_config

from recovery_cli.config import load_config
from recovery_cli.environment import Environment
from recovery_cli.handler_calls import Components
from recovery_cli.orchestrator import Orchestrator, RecoverRequest
from recovery_cli.store import Store

RUNS = 50


def main() -> None:
    records = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config_path = write_config(root / "cfg.yml")
        generate_audit(root / "state" / "audit", records, 30, time.time())
        (root / "state").chmod(0o700)
        unhealthy = 'settings: {probe: ["false"]}'
        text = config_path.read_text()
        text = text.replace(
            '  app:\n    kind: command\n    settings: {probe: ["true"]}',
            f"  app:\n    kind: command\n    {unhealthy}",
        )
        config_path.write_text(
            text + "defaults: {cooldown_seconds: 600, max_attempts_per_hour: 1000}\n"
        )
        config = load_config(config_path)
        env = Environment(environ={"USER": "bench"})
        store = Store(root / "state", env)
        components = Components(config, env, store.root)
        orchestrator = Orchestrator(config, store, env, components)
        orchestrator.recover(
            RecoverRequest(components=("app",), trigger="cron")
        )  # one failure: cooldown from now on
        handler = components.handler("redis")
        probe = timed(handler.probe, RUNS)

        def run(name: str) -> None:
            fresh = Orchestrator(config, store, env, Components(config, env, store.root))
            fresh.recover(RecoverRequest(components=(name,), trigger="cron"))

        healthy = timed(lambda: run("redis"), RUNS)
        blocked = timed(lambda: run("app"), RUNS)
    print(f"audit trail: {records:,} records over 30 days; {RUNS} runs each, medians")
    print(f"probe alone (command `true`)                 {probe * 1000:6.2f} ms")
    print(
        f"recover, healthy component, beyond the probe {(healthy - probe) * 1000:6.2f} ms (target < 20 ms)"
    )
    print(f"recover, refused by cooldown, beyond probe   {(blocked - probe) * 1000:6.2f} ms")


if __name__ == "__main__":
    main()
