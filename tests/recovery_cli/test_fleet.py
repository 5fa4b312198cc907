"""The PostgreSQL backend with a fleet: several hosts (distinct host names and state dirs)
running real ``recover``/``approve`` processes against one private PostgreSQL."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.cli import child_env
from tests.support.fleet import DSN_ENV, Fleet, failing_component, private_fleet

pytestmark = pytest.mark.slow


@pytest.fixture
def fleet(tmp_path: Path, pg_dsn: str) -> Fleet:
    return Fleet(tmp_path, pg_dsn)


def test_twenty_runs_from_four_hosts_share_one_cap_on_a_fleet_component(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.write_config({"shared": failing_component(tmp_path, "fleet")})
    hosts = [f"host-{i % 4}" for i in range(20)]

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda h: fleet.run(h, "recover", "shared"), hosts))

    assert all(r.returncode in (1, 3) for r in results), [r.stderr for r in results]
    started = [r for r in fleet.rows("attempt") if r["outcome"] == "started"]
    blocked = fleet.rows("blocked")
    assert len(started) == 3
    assert len(blocked) == 17
    assert {b["reason"] for b in blocked} == {"hourly_cap"}
    assert {r["host"] for r in fleet.rows()} == {"host-0", "host-1", "host-2", "host-3"}
    verify = fleet.run("host-0", "history", "--verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_host_component_keeps_a_cap_per_host(fleet: Fleet, tmp_path: Path) -> None:
    fleet.write_config({"local": failing_component(tmp_path, "host")})
    hosts = [f"host-{i % 2}" for i in range(10)]

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda h: fleet.run(h, "recover", "local"), hosts))

    started = [r for r in fleet.rows("attempt") if r["outcome"] == "started"]
    assert sorted(r["host"] for r in started) == ["host-0"] * 3 + ["host-1"] * 3
    assert len(fleet.rows("blocked")) == 4


def test_an_approval_made_on_one_host_is_approved_once_from_ten_others(
    fleet: Fleet, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    component = failing_component(tmp_path, "fleet", ["sh", "-c", f"echo x >> {ran}"])
    component["strategies"]["fix"]["approval"] = "required"
    fleet.write_config({"shared": component})
    asked = fleet.run("host-a", "recover", "shared", "--json")
    assert asked.returncode == 3, asked.stderr
    approval_id = json.loads(asked.stdout)[0]["approval_id"]
    listed = fleet.run("host-b", "approve", "--json")
    assert [a["id"] for a in json.loads(listed.stdout)] == [approval_id]

    hosts = [f"approver-{i}" for i in range(10)]
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda h: fleet.run(h, "approve", approval_id, "--as", h), hosts))

    assert ran.read_text() == "x\n"  # the step ran once
    approved = fleet.rows("approved")
    assert len(approved) == 1 and approved[0]["host"] in hosts
    codes = sorted(r.returncode for r in results)
    assert codes.count(3) == 9, [r.stderr for r in results]
    assert all(
        "not pending" in r.stderr or "lock" in r.stderr for r in results if r.returncode == 3
    )


def test_with_the_database_killed_fleet_components_fail_closed_and_host_ones_recover_locally(
    tmp_path: Path,
) -> None:
    import threading
    import time

    flags = tmp_path / "flags"
    flags.mkdir()
    local = {
        "kind": "command",
        "scope": "host",
        "settings": {"probe": ["sh", "-c", f'test -f "{flags}/$RECOVERY_HOST"']},
        "chain": ["fix"],
        "strategies": {
            "fix": {"params": {"command": ["sh", "-c", f'touch "{flags}/$RECOVERY_HOST"']}}
        },
    }
    with private_fleet(tmp_path) as (server, fleet):
        fleet.write_config(
            {"shared": failing_component(tmp_path, "fleet"), "local": local},
            fleet={"max_concurrent_actions": 4},
        )
        assert fleet.run("host-0", "recover").returncode in (1, 3)
        before = len(fleet.rows())

        hosts = [f"host-{i % 4}" for i in range(12)]
        killer = threading.Timer(0.5, lambda: server.stop("immediate"))
        killer.start()
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda h: (time.sleep(0.1), fleet.run(h, "recover"))[1], hosts))
        killer.join()
        after_kill = [fleet.run(h, "recover", "--json") for h in ("host-1", "host-2")]
        metrics_down = json.loads(fleet.run("host-1", "metrics", "--json").stdout)

        for result in results + after_kill:
            assert result.returncode in (0, 1, 3), result.stderr
            assert "Traceback" not in result.stderr
        for result in after_kill:
            reports = {r["component"]: r for r in json.loads(result.stdout)}
            assert reports["shared"]["outcome"] == "blocked"
            assert "backend_unavailable" in json.dumps(reports["shared"])
            assert reports["local"]["health"] == "healthy"
        assert sorted(p.name for p in flags.iterdir()) == ["host-0", "host-1", "host-2", "host-3"]
        [up] = [m for m in metrics_down if m["name"] == "infra_recovery_backend_up"]
        assert up == {
            "name": "infra_recovery_backend_up",
            "labels": {"backend": "postgres"},
            "value": 0.0,
        }

        server.start()
        for host in ("host-0", "host-1", "host-2", "host-3"):
            assert fleet.run(host, "recover", "local").returncode == 0
        rows = fleet.rows()
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids))
        local_ids = set()
        for host in ("host-0", "host-1", "host-2", "host-3"):
            for day in (tmp_path / f"state-{host}" / "audit").glob("*.jsonl"):
                local_ids |= {json.loads(line)["id"] for line in day.read_text().splitlines()}
        assert local_ids <= set(ids)  # every record written locally is in the database
        unavailable = [r for r in rows if r.get("reason") == "backend_unavailable"]
        assert {r["host"] for r in unavailable} >= {"host-1", "host-2"}
        assert len(rows) > before
        verify = fleet.run("host-3", "history", "--verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr


STOP_IN_TRANSACTION = """\
import os, signal
import recovery_cli.pg_store as pg

_lock = pg.PgStore._lock


def _stopping_lock(self, conn, wait):
    _lock(self, conn, wait)
    marker = os.environ.get("STOP_MARKER")
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGSTOP)


pg.PgStore._lock = _stopping_lock
"""


def test_a_run_stopped_inside_a_transaction_holds_the_others_only_until_the_idle_timeout(
    fleet: Fleet, tmp_path: Path
) -> None:
    import os
    import signal
    import time

    fleet.write_config(
        {
            "shared": failing_component(tmp_path, "fleet"),
            "other": failing_component(tmp_path, "fleet"),
        }
    )
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(STOP_IN_TRANSACTION)
    marker = tmp_path / "stopped"
    stopped = subprocess.Popen(
        fleet.argv("host-a", "recover", "shared"),
        env=fleet.env("host-a", {"PYTHONPATH": str(shim), "STOP_MARKER": str(marker)}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists()
        started = time.monotonic()
        elsewhere = fleet.run("host-c", "recover", "other")
        took_elsewhere = time.monotonic() - started
        same = fleet.run("host-b", "recover", "shared")
        took_same = time.monotonic() - started
    finally:
        os.kill(stopped.pid, signal.SIGKILL)
        stopped.wait(10)

    assert elsewhere.returncode == same.returncode == 1, same.stderr  # both ran (no heal)
    # idle_in_transaction_session_timeout (2 s) freed the state lock for every other
    # component; the stopped run's own component waited for its lease to lapse (5 s) too:
    # neither waited the 60 s lock_wait_seconds
    assert took_elsewhere < 5
    assert took_same < 10
    started_by = sorted(
        (r["component"], r["host"]) for r in fleet.rows("attempt") if r["outcome"] == "started"
    )
    assert started_by == [("other", "host-c"), ("shared", "host-b")]


def test_import_then_export_keeps_the_trail_and_history_answers_the_same(
    fleet: Fleet, tmp_path: Path
) -> None:
    import time

    from tests.support.trail import write_trail

    host = "host-0"
    state = tmp_path / f"state-{host}"
    state.mkdir(mode=0o700)
    write_trail(state / "audit", 100_000, 10, time.time())
    queries = [
        ("history", "--json", "--limit", "100000"),
        ("history", "--json", "--component", "redis", "--last", "24h", "--limit", "500"),
        ("history", "--json", "--outcome", "failed", "--since", "3d", "--limit", "2000"),
        ("history", "--stats", "--json"),
        ("metrics", "--json"),
    ]
    fleet.write_config({"redis": failing_component(tmp_path, "fleet")})
    as_file = fleet.config.read_text().replace("backend: postgres", "backend: file")
    fleet.config.write_text(as_file)
    before = [fleet.run(host, *q) for q in queries]
    fleet.write_config({"redis": failing_component(tmp_path, "fleet")})

    imported = fleet.run(host, "state", "import")
    again = fleet.run(host, "state", "import")
    after = [fleet.run(host, *q) for q in queries]
    verify = fleet.run(host, "history", "--verify")
    exported = fleet.run(host, "state", "export", str(tmp_path / "exported"))

    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == f"imported 100000 records from {state / 'audit'}"
    assert again.returncode == 2 and "empty one" in again.stderr
    for old, new in zip(before, after, strict=True):
        assert old.returncode == new.returncode == 0, new.stderr
        assert _but_backend(json.loads(new.stdout)) == _but_backend(json.loads(old.stdout))
    assert len(json.loads(after[0].stdout)) == 100_000
    assert verify.returncode == 0, verify.stdout[:500]
    assert exported.returncode == 0, exported.stderr
    originals = sorted((state / "audit").glob("*.jsonl"))
    copies = sorted((tmp_path / "exported").glob("*.jsonl"))
    assert [p.name for p in copies] == [p.name for p in originals]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(originals, copies, strict=True))


def _but_backend(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Metrics rows without the backend's own gauge (its label names the backend)."""
    return [r for r in rows if r.get("name") != "infra_recovery_backend_up"]


def test_a_broken_trail_is_not_imported(fleet: Fleet, tmp_path: Path) -> None:
    import time

    from tests.support.trail import write_trail

    state = tmp_path / "state-host-0"
    state.mkdir(mode=0o700)
    write_trail(state / "audit", 100, 1, time.time())
    day = sorted((state / "audit").glob("*.jsonl"))[0]
    day.write_text(day.read_text().replace("record 5", "record five"))
    fleet.write_config({"redis": failing_component(tmp_path, "fleet")})

    result = fleet.run("host-0", "state", "import")

    assert result.returncode == 2
    assert "the trail's chain is broken" in result.stderr and "not imported" in result.stderr
    assert fleet.rows() == []


def test_local_audit_keeps_a_verified_copy_of_each_hosts_records(
    fleet: Fleet, tmp_path: Path
) -> None:
    from recovery_cli.audit import AuditLog

    fleet.write_config({"shared": failing_component(tmp_path, "fleet")})
    fleet.config.write_text(
        fleet.config.read_text().replace(
            "dsn_env: TEST_RECOVERY_DSN", "dsn_env: TEST_RECOVERY_DSN\n  local_audit: true"
        )
    )
    for host in ("host-a", "host-b"):
        assert fleet.run(host, "recover", "shared").returncode == 1

    for host in ("host-a", "host-b"):
        local = AuditLog(tmp_path / f"state-{host}" / "audit")
        mine = [r["id"] for r in fleet.rows() if r["host"] == host]
        assert [r["id"] for r in local.read_forward()] == mine
        assert local.verify() == []


def test_migrate_is_idempotent_even_from_two_hosts_at_once(tmp_path: Path, postgres: Any) -> None:
    dsn = postgres.create_database()
    fleet = Fleet(tmp_path, dsn)
    fleet.write_config({"shared": failing_component(tmp_path, "fleet")})
    unmigrated = fleet.run("host-a", "recover", "shared")

    with ThreadPoolExecutor(2) as pool:
        first = list(pool.map(lambda h: fleet.run(h, "state", "migrate"), ["host-a", "host-b"]))
    again = fleet.run("host-a", "state", "migrate")

    assert unmigrated.returncode == 3
    assert "run `recovery state migrate`" in unmigrated.stderr + unmigrated.stdout
    assert sorted(r.stdout.strip() for r in first) == [
        "schema at version 1 (applied 1)",
        "schema up to date (version 1)",
    ]
    assert again.stdout.strip() == "schema up to date (version 1)"
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM recovery_schema").fetchone() == (1,)


def test_the_config_names_the_host_unless_recovery_host_does(fleet: Fleet, tmp_path: Path) -> None:
    fleet.write_config({"shared": failing_component(tmp_path, "fleet")}, host="web-9")
    named = fleet.argv("ignored", "recover", "shared")
    env = child_env({DSN_ENV: fleet.dsn})
    by_config = subprocess.run(named, capture_output=True, text=True, env=env, timeout=60)
    by_env = fleet.run("from-env", "recover", "shared")

    assert by_config.returncode == by_env.returncode == 1, by_config.stderr
    assert [r["host"] for r in fleet.rows("attempt")] == ["web-9", "web-9", "from-env", "from-env"]


def test_without_the_dsn_variable_or_with_a_bad_backend_setting_it_is_a_usage_error(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.write_config({"shared": failing_component(tmp_path, "fleet")})
    unset = subprocess.run(
        fleet.argv("h", "status", "--no-probe"),
        capture_output=True,
        text=True,
        env=child_env({"RECOVERY_HOST": "h"}),
        timeout=60,
    )
    fleet.config.write_text(fleet.config.read_text().replace("  dsn_env: TEST_RECOVERY_DSN\n", ""))
    no_dsn_env = fleet.run("h", "status", "--no-probe")

    assert unset.returncode == 2
    assert unset.stderr.strip() == f"state.dsn_env: environment variable {DSN_ENV} is not set"
    assert no_dsn_env.returncode == 2 and "needs dsn_env" in no_dsn_env.stderr


def test_the_drill_fails_while_the_state_database_does_not_answer(
    fleet: Fleet, tmp_path: Path, pg_dsn: str
) -> None:
    from tests.support.net import free_port

    fleet.write_config({"shared": failing_component(tmp_path, "fleet")})
    up = fleet.run("h", "test")
    fleet.dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    down = fleet.run("h", "test")

    assert "state backend: postgres" in up.stdout and up.returncode in (0, 1)
    assert down.returncode == 1
    line = next(ln for ln in down.stdout.splitlines() if "state backend: postgres" in ln)
    assert "does not answer" in line


def test_the_fleet_budget_stops_a_second_host_acting_at_the_same_time(
    fleet: Fleet, tmp_path: Path
) -> None:
    import threading
    import time

    slow = failing_component(tmp_path, "fleet", ["sleep", "4"])
    fleet.write_config(
        {"first": slow, "second": failing_component(tmp_path, "fleet")},
        fleet={"max_concurrent_actions": 1},
    )
    busy = threading.Thread(target=lambda: fleet.run("host-a", "recover", "first"))
    busy.start()
    deadline = time.monotonic() + 30
    while not fleet.rows("step") and time.monotonic() < deadline:
        if [r for r in fleet.rows("attempt") if r["host"] == "host-a"]:
            break
        time.sleep(0.1)
    refused = fleet.run("host-b", "recover", "second", "--json")
    busy.join(60)
    afterwards = fleet.run("host-b", "recover", "second")

    assert refused.returncode == 3, refused.stderr
    [blocked] = fleet.rows("blocked")
    assert (blocked["reason"], blocked["host"]) == ("fleet_budget", "host-b")
    assert "fleet.max_concurrent_actions 1" in blocked["detail"]
    assert afterwards.returncode == 1  # host-a is done: host-b acts
