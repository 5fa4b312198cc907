"""The PostgreSQL backend against a hostile or unlucky fleet: each test here is a defect
found by attacking it, kept from coming back."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.fleet import Fleet, failing_component, popen_on, private_fleet
from tests.support.net import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def fleet(tmp_path: Path, pg_dsn: str) -> Fleet:
    return Fleet(tmp_path, pg_dsn)


def _sql(dsn: str, statement: str, *params: Any) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement, params)


def test_verify_reads_the_database_trail_and_sees_an_edited_line_or_column(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.write_config({"fl": failing_component(tmp_path, "fleet")})
    fleet.run("h", "recover", "fl")
    intact = fleet.run("h", "history", "--verify")
    with psycopg.connect(fleet.dsn, autocommit=True) as conn:
        seq, line = conn.execute(
            "SELECT seq, line FROM recovery_audit WHERE outcome = 'failed' ORDER BY seq LIMIT 1"
        ).fetchone()
        conn.execute(
            "UPDATE recovery_audit SET line = %s WHERE seq = %s",
            (line.replace('"failed"', '"success"'), seq),
        )
        edited_line = fleet.run("h", "history", "--verify")
        conn.execute("UPDATE recovery_audit SET line = %s WHERE seq = %s", (line, seq))
        conn.execute(
            "UPDATE recovery_audit SET ts = '2020-01-01T00:00:00.000000Z'"
            " WHERE event = 'attempt' AND outcome = 'started'"
        )
    edited_column = fleet.run("h", "history", "--verify")

    assert intact.returncode == 0, intact.stdout
    assert edited_line.returncode == 1 and "prev_hash does not match" in edited_line.stdout
    assert edited_column.returncode == 1
    assert "column(s) ts differ from the record" in edited_column.stdout


def test_a_host_whose_config_lacks_a_fleet_component_leaves_its_state_alone(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.write_config(
        {"fl": failing_component(tmp_path, "fleet"), "hc": failing_component(tmp_path, "host")}
    )
    assert fleet.run("a", "disable", "fl", "--for", "2h", "--reason", "maintenance").returncode == 0
    fleet.write_config({"hc": failing_component(tmp_path, "host")})  # a host not updated yet
    fleet.run("b", "recover", "hc")
    fleet.write_config(
        {"fl": failing_component(tmp_path, "fleet"), "hc": failing_component(tmp_path, "host")}
    )
    held = fleet.run("c", "recover", "fl", "--json")

    assert held.returncode == 3, held.stdout + held.stderr
    assert json.loads(held.stdout)[0]["reason"] == "disabled"


def test_disables_hold_across_an_outage_and_a_fleet_one_cannot_be_made_locally(
    tmp_path: Path,
) -> None:
    with private_fleet(tmp_path) as (server, fleet):
        fleet.write_config(
            {
                "fl": failing_component(tmp_path, "fleet"),
                "hc": failing_component(tmp_path, "host"),
                "hd": failing_component(tmp_path, "host"),
            }
        )
        assert fleet.run("h1", "disable", "hc", "--for", "2h", "--reason", "before").returncode == 0
        server.stop("immediate")
        kept = fleet.run("h1", "recover", "hc", "--json")  # the disable made while it answered
        fleet_disable = fleet.run("h1", "disable", "fl", "--for", "2h", "--reason", "x")
        made = fleet.run("h1", "disable", "hd", "--for", "2h", "--reason", "during")
        server.start()
        after = fleet.run("h1", "recover", "hd", "--json")  # the disable made while it was away

    assert json.loads(kept.stdout)[0]["reason"] == "disabled", kept.stdout
    assert fleet_disable.returncode == 3 and "fleet component" in fleet_disable.stderr
    assert made.returncode == 0
    assert json.loads(after.stdout)[0]["reason"] == "disabled", after.stdout


def test_a_slow_dependency_probe_runs_outside_the_state_transaction(
    fleet: Fleet, tmp_path: Path
) -> None:
    slow = failing_component(tmp_path, "host")
    slow["settings"]["probe"] = ["sh", "-c", "sleep 3; exit 2"]  # slow, and down
    slow["probe_timeout_seconds"] = 10
    dependent = failing_component(tmp_path, "fleet")
    dependent["depends_on"] = ["slowdep"]
    fleet.write_config({"slowdep": slow, "fl": dependent})

    result = fleet.run("h", "recover", "fl", "--json")

    assert result.returncode == 3, result.stderr
    assert "unexpected error" not in result.stderr
    assert json.loads(result.stdout)[0]["reason"] == "dependency"


def test_the_database_stopping_mid_run_is_a_clean_refusal_not_a_crash(tmp_path: Path) -> None:
    with private_fleet(tmp_path) as (server, fleet):
        slow = failing_component(tmp_path, "fleet")
        slow["settings"]["probe"] = ["sh", "-c", "sleep 1.5; exit 2"]
        fleet.write_config({"fl": slow})
        killer = threading.Timer(0.8, lambda: server.stop("immediate"))
        killer.start()
        result = fleet.run("h", "recover", "fl")
        killer.join()
        server.start()

    assert result.returncode in (1, 3), result.stderr
    assert "unexpected error" not in result.stderr and "Traceback" not in result.stderr


def test_a_lease_outlives_a_database_restart_while_its_holder_acts(tmp_path: Path) -> None:
    log = tmp_path / "acting.log"
    step = [
        "sh",
        "-c",
        f'echo "start $RECOVERY_HOST $(date +%s.%N)" >> {log}; sleep 8;'
        f' echo "end $RECOVERY_HOST $(date +%s.%N)" >> {log}',
    ]
    with private_fleet(tmp_path) as (server, fleet):
        component = failing_component(tmp_path, "fleet", step)
        component["step_timeout_seconds"] = 30
        fleet.write_config({"fl": component})
        text = fleet.config.read_text().replace("lock_wait_seconds: 60", "lock_wait_seconds: 1")
        fleet.config.write_text(text)
        first = threading.Thread(target=lambda: fleet.run("host-a", "recover", "fl"))
        first.start()
        time.sleep(2)
        server.stop("fast")
        server.start()
        time.sleep(5)  # past the lease's lapse, had it not been renewed
        second = fleet.run("host-b", "recover", "fl", "--json")
        first.join(60)

    starts = [line.split()[1] for line in log.read_text().splitlines() if line.startswith("start")]
    assert starts == ["host-a"], log.read_text()  # host-b did not act beside it
    assert second.returncode == 3, second.stdout + second.stderr


def test_a_partly_written_dsn_password_never_shows(tmp_path: Path, postgres: Any) -> None:
    dsn = postgres.create_database().replace("postgres@", "postgres:s3cret%zzpw@")
    fleet = Fleet(tmp_path, dsn)
    fleet.write_config(
        {"hc": failing_component(tmp_path, "host"), "fl": failing_component(tmp_path, "fleet")}
    )
    results = [
        fleet.run("h", "recover"),  # fl is refused, naming why: the error quotes the DSN
        fleet.run("h", "recover", "--json"),
        fleet.run("h", "status", "--no-probe"),
    ]
    assert "backend_unavailable" in results[1].stdout

    for result in results:
        assert "s3cret" not in result.stdout + result.stderr
    for path in (tmp_path / "state-h").rglob("*"):
        if path.is_file():
            assert b"s3cret" not in path.read_bytes(), path


def test_a_watch_does_not_pile_up_connections(fleet: Fleet, tmp_path: Path) -> None:
    fleet.write_config(
        {"ok": {**failing_component(tmp_path, "fleet"), "settings": {"probe": ["true"]}}}
    )
    peak = 0
    proc = popen_on(fleet, "h", "watch", "--interval", "0.05", "--cycles", "60")
    while proc.poll() is None:
        with psycopg.connect(fleet.dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'recovery-cli'"
            ).fetchone()
        peak = max(peak, int(row[0]) if row else 0)
        time.sleep(0.05)
    assert proc.stderr is not None
    proc.stderr.close()
    assert proc.returncode == 0
    assert peak <= 3, peak


def test_a_damaged_fleet_document_is_one_line_that_says_what_to_do(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.write_config(
        {"hc": failing_component(tmp_path, "host"), "fl": failing_component(tmp_path, "fleet")}
    )
    fleet.run("h", "recover", "hc")
    for damage in ('"str"', '{"disabled": []}', '{"components": {"fl": []}}'):
        _sql(
            fleet.dsn,
            "INSERT INTO recovery_state (scope, doc) VALUES ('fleet', %s::jsonb)"
            " ON CONFLICT (scope) DO UPDATE SET doc = excluded.doc",
            damage,
        )
        result = fleet.run("h", "status", "--no-probe")
        assert result.returncode == 4, (damage, result.stdout)
        assert "damaged" in result.stderr and "recovery_state" in result.stderr, damage
        assert "unexpected error" not in result.stderr, damage


def test_small_things_a_fleet_operator_meets(fleet: Fleet, tmp_path: Path, postgres: Any) -> None:
    fleet.write_config({"hc": failing_component(tmp_path, "host")})
    bare = Fleet(tmp_path / "bare", postgres.create_database())
    (tmp_path / "bare").mkdir()
    bare.write_config({"hc": failing_component(tmp_path, "host")})
    import_unmigrated = bare.run("h", "state", "import", str(tmp_path))
    export_nowhere = fleet.run("h", "state", "export", "/proc/no-such-dir/x")
    fleet.dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    down = fleet.run("h", "status", "--no-probe")

    assert (
        import_unmigrated.returncode == 2
        and "run `recovery state migrate`" in import_unmigrated.stderr
    )
    assert export_nowhere.returncode == 2 and "cannot write to" in export_nowhere.stderr
    assert "showing this host's state dir instead" in down.stderr
