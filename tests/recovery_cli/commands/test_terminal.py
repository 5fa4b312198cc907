"""What a person sees at a terminal: the real ``recovery`` command on a PTY of 80 and of 200
columns, against a state dir the real commands filled (long component names, long reasons,
a failed chain, a cooldown, a pending approval, a disable, a drill)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from recovery_cli import render
from recovery_cli.audit import GENESIS_HASH
from recovery_cli.handlers.util import format_ts
from tests.support.cli import Workspace, base_config, child_env, command_component
from tests.support.terminal import COLOUR, cells, run_on_terminal, screen_lines

RECOVERY = str(Path(sys.executable).with_name("recovery"))  # the installed console script
LEDGER = "payments-ledger-postgres-replica-eu-west-1"
SEARCH = "search-index-chromadb-primary-with-long-name"
CACHE = "session-cache-redis-cluster-node-07"
GATEWAY = "checkout-api-frontend-gateway"
REFUSED = (
    "connection refused by 10.0.0.12:5432 after 3 retries; the replica is still replaying "
    "WAL segment 000000010000004A000000FE"
)
LONG_REASON = (
    "planned maintenance window for the redis cluster upgrade to 7.2, ticket OPS-4812, "
    "ask #sre-oncall before enabling"
)
HEADERS = {
    "status": [
        "component",
        "kind",
        "health",
        "state",
        "failure",
        "attempts/h",
        "cooldown",
        "disabled until",
        "degraded",
        "approvals",
        "next attempt",
    ],
    "history": [
        "ts",
        "event",
        "component",
        "strategy",
        "outcome",
        "trigger",
        "operator",
        "detail",
    ],
    "history --stats": [
        "component",
        "strategy",
        "failure",
        "runs",
        "ok",
        "success rate",
        "mean s",
    ],
    "approve": [
        "id",
        "component",
        "strategy",
        "failure",
        "requested",
        "expires",
        "plan",
        "would lose",
    ],
    "test": ["component", "check", "result", "detail"],
    "recover --dry-run": ["component", "outcome", "health", "failure", "reason", "detail"],
}
STEP_HEADERS = ["component", "step", "result", "healthy after", "tries", "took", "detail"]
TABLES = list(HEADERS)
# a 10-digit number standing alone: epoch seconds (2001 to 2286)
EPOCH = re.compile(r"(?<![\w.:-])\d{10}(?:\.\d+)?(?![\w:-])")


def shell(probe_exit: int, says: str) -> list[str]:
    return ["sh", "-c", f"echo '{says}'; exit {probe_exit}"]


def failing(says: str) -> list[str]:
    return ["sh", "-c", f"echo '{says}' >&2; exit 1"]


def lived_config() -> dict[str, object]:
    ledger = command_component(
        shell(2, REFUSED),
        {
            "reconnect_with_exponential_backoff": failing(f"reconnect failed: {REFUSED}"),
            "restart_the_whole_service_gracefully": failing(
                "systemctl restart postgresql@15-replica timed out waiting for the socket "
                "/run/postgresql/.s.PGSQL.5432"
            ),
        },
    )
    search = command_component(
        shell(1, "collection embeddings answers slowly: p99 2400ms over the 800ms budget"),
        {"rebuild_the_hnsw_index_from_wal": ["true"]},
    )
    search["strategies"]["rebuild_the_hnsw_index_from_wal"]["approval"] = "required"
    config = base_config(
        {
            LEDGER: ledger,
            SEARCH: search,
            CACHE: command_component(["true"], {"flush_corrupted_keys": ["true"]}),
            GATEWAY: command_component(
                ["sh", "-c", "exit 2"], {"restart_gateway_pods": ["true"]}, depends_on=[LEDGER]
            ),
            "web": command_component(["true"], {"restart": ["true"]}),
        }
    )
    config["degraded_modes"] = {
        "payments_read_only_mode": {"component": LEDGER, "capabilities": {"payments": "read"}}
    }
    return config


@pytest.fixture(scope="module")
def lived(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = Workspace(tmp_path_factory.mktemp("terminal"))
    ws.write_config(lived_config())
    assert ws.run("recover").returncode == 1  # the ledger's chain fails, search waits
    assert ws.run("recover").returncode == 3  # now the cooldown and the dependency hold
    assert ws.run("disable", CACHE, "--for", "2h", "--reason", LONG_REASON).returncode == 0
    assert ws.run("test").returncode == 0
    return ws


def terminal_env(**extra: str) -> dict[str, str]:
    env = child_env({"TERM": "xterm-256color", **extra})
    for name in ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR"):
        if name not in extra:
            env.pop(name, None)
    return env


def on_terminal(
    ws: Workspace, args: list[str], columns: int, **env: str
) -> tuple[int, bytes, list[str]]:
    argv = [RECOVERY, "--config", str(ws.config), "--state-dir", str(ws.state), *args]
    code, output = run_on_terminal(argv, terminal_env(**env), lambda _: None, columns=columns)
    return code, output, screen_lines(output)


def argv_of(table: str) -> list[str]:
    extra = {"history": ["--limit", "12"], "history --stats": []}.get(table, [])
    return [*table.split(), *extra]


def piped_json(ws: Workspace, table: str) -> list[object]:
    rows: list[object] = json.loads(ws.run(*argv_of(table), "--json").stdout)
    return rows


def rows_of(lines: list[str]) -> list[str]:
    """The table's rows: the lines under the header rule, up to the first that is not one
    (blank, the note on dropped columns, the next table's title, the drill's summary, an
    approval's plan)."""
    rule = next(i for i, line in enumerate(lines) if line.startswith("───"))
    rows = []
    for line in lines[rule + 1 :]:
        if line.strip() in ("", "steps") or line.startswith("--wide shows"):
            break
        if re.match(r"^\d+ passed, |^[0-9a-f]{8}: ", line):
            break
        rows.append(line)
    return rows


@pytest.mark.parametrize("table", TABLES)
def test_at_80_columns_no_line_is_longer_and_no_record_wraps(lived: Workspace, table: str) -> None:
    records = piped_json(lived, table)
    _, output, lines = on_terminal(lived, argv_of(table), 80)

    text = output.decode(errors="replace")
    assert records and all(cells(line) <= 80 for line in lines), text
    assert len(rows_of(lines)) == len(records), text  # one line per record
    assert lines[0].split()[0] == HEADERS[table][0], text  # the identifying column stays


def test_at_80_columns_status_keeps_identity_and_health_and_says_what_it_dropped(
    lived: Workspace,
) -> None:
    _, _, lines = on_terminal(lived, ["status"], 80)

    header = lines[0].split("  ")
    assert [h.strip() for h in header if h.strip()][:3] == ["component", "health", "state"]
    ledger = next(line for line in rows_of(lines) if line.startswith("payments-ledger"))
    assert LEDGER not in ledger and "…" in ledger.split()[0]  # cut with an ellipsis
    assert "down" in ledger and "failed" in ledger
    dropped = lines[lines.index(next(ln for ln in lines if "--wide" in ln)) :]
    note = " ".join(" ".join(dropped).split())  # the note may wrap onto indented lines
    assert "kind" in note and "disabled until" in note and "root cause" in note


@pytest.mark.parametrize("table", TABLES)
def test_at_200_columns_every_column_is_shown(lived: Workspace, table: str) -> None:
    _, output, lines = on_terminal(lived, argv_of(table), 200)

    text = output.decode(errors="replace")
    assert all(header in lines[0] for header in HEADERS[table]), text
    assert "--wide shows" not in text
    assert all(cells(line) <= 200 for line in lines), text


def test_a_recovery_report_and_its_steps_fit_80_and_show_every_column_at_200(
    lived: Workspace,
) -> None:
    _, narrow, _ = on_terminal(lived, ["recover", "--dry-run"], 80)
    _, _, roomy = on_terminal(lived, ["recover", "--dry-run"], 200)

    steps = roomy[[line.strip() for line in roomy].index("steps") + 1]
    assert all(cells(line) <= 80 for line in screen_lines(narrow)), narrow.decode()
    assert all(header in steps for header in STEP_HEADERS), roomy
    assert any(
        line.startswith(SEARCH) and "rebuild_the_hnsw_index_from_wal" in line for line in roomy
    )


def test_wide_shows_every_column_untruncated_even_at_80(lived: Workspace) -> None:
    _, _, lines = on_terminal(lived, ["status", "--wide"], 80)

    assert all(header in lines[0] for header in HEADERS["status"])
    assert any(line.startswith(LEDGER + " ") for line in lines)
    assert max(cells(line) for line in lines) > 80
    assert not any("…" in line for line in lines)
    cache = next(line for line in lines if line.startswith(CACHE))
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", cache)  # the time itself, not "in 2h"


def test_colour_on_a_terminal_and_none_with_no_color_dumb_or_piped(lived: Workspace) -> None:
    _, coloured, _ = on_terminal(lived, ["status", "--no-probe"], 120)
    _, no_color, _ = on_terminal(lived, ["status", "--no-probe"], 120, NO_COLOR="1")
    _, dumb, _ = on_terminal(lived, ["status", "--no-probe"], 120, TERM="dumb")
    _, empty_no_color, _ = on_terminal(lived, ["status", "--no-probe"], 120, NO_COLOR="")
    piped = lived.run("status", "--no-probe")

    assert COLOUR.search(coloured.decode()), coloured
    assert b"\x1b[" not in no_color and b"\x1b[" not in dumb
    assert COLOUR.search(empty_no_color.decode()), "an empty NO_COLOR is no request"
    assert "\x1b" not in piped.stdout and "…" not in piped.stdout
    assert LEDGER in piped.stdout and piped.stdout.splitlines()[1].startswith("-----")


def test_health_and_state_colours(lived: Workspace) -> None:
    _, output, _ = on_terminal(lived, ["status"], 200)

    text = output.decode()
    assert "\x1b[31mdown" in text  # red
    assert "\x1b[33mdegraded" in text  # yellow
    assert "\x1b[32mhealthy" in text  # green
    assert "\x1b[31mfailed (cooldown)" in text  # lifecycle state failed: red


def test_piped_output_keeps_every_column_whatever_columns_says(lived: Workspace) -> None:
    narrow = lived.run("history", "--limit", "5", env={"COLUMNS": "40"})

    assert narrow.stdout.splitlines()[0].split() == HEADERS["history"]
    assert max(len(line) for line in narrow.stdout.splitlines()) > 40


def test_disable_and_enable_lines_fit_80_columns(lived: Workspace) -> None:
    code, _, disabled = on_terminal(lived, ["disable", "web", "--for", "90m", "--reason", "x"], 80)
    _, _, enabled = on_terminal(lived, ["enable", "web"], 80)
    piped = lived.run("disable", GATEWAY, "--for", "1h", "--reason", LONG_REASON)
    lived.run("enable", GATEWAY)

    shown = " ".join(line.strip() for line in disabled)
    assert code == 0 and all(cells(line) <= 80 for line in disabled + enabled)
    assert "web: automatic recovery disabled until" in shown and "(in 1h30m)" in shown
    assert re.search(r"until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", shown)
    assert enabled[0] == "web: enabled"
    assert re.fullmatch(rf"{GATEWAY}: automatic recovery disabled until \S+Z\n", piped.stdout)


def test_no_raw_epoch_in_any_human_output(lived: Workspace) -> None:
    outputs = [lived.run(*argv_of(t)).stdout for t in TABLES]
    outputs.append(lived.run("history", "--limit", "200").stdout)
    outputs.append(lived.run("status", "--explain").stdout)
    outputs += [
        b"\n".join(line.encode() for line in on_terminal(lived, argv_of(t), 200)[2]).decode()
        for t in ("status", "approve")
    ]

    for text in outputs:
        assert not EPOCH.search(text), text
    expires = [r for r in lived.records() if r["event"] == "approval_requested"]
    assert expires and re.search(r"expires \d{4}-\d\d-\d\dT", expires[0]["detail"])


def write_old_trail(ws: Workspace, expires: float) -> None:
    """One ``approval_requested`` record as older versions wrote it: the expiry in epoch
    seconds in its detail."""
    day = format_ts(expires - 3600)
    record = {
        "ts": day,
        "id": "0123456789ab",
        "event": "approval_requested",
        "component": "web",
        "strategy": "restart",
        "trigger": "cron",
        "approval_id": "5eed0001",
        "detail": f"plan 371f6902146e3aea, expires {expires:.0f}",
        "host": "host-a",
        "pid": 4242,
        "prev_hash": GENESIS_HASH,
    }
    line = json.dumps(record, separators=(",", ":"))
    audit = ws.state / "audit"
    audit.mkdir(parents=True, mode=0o700)
    ws.state.chmod(0o700)
    (audit / f"{day[:10]}.jsonl").write_text(line + "\n")


def test_an_old_records_epoch_is_shown_as_iso(ws: Workspace) -> None:
    ws.write_config(base_config({"web": command_component(["true"], {"restart": ["true"]})}))
    expires = 1_795_000_000.0
    write_old_trail(ws, expires)
    piped = ws.run("history")
    _, _, wide = on_terminal(ws, ["history", "--wide"], 200)

    iso = render.iso(expires)
    assert f"expires {iso}" in piped.stdout and "1795000000" not in piped.stdout
    assert any(f"expires {iso}" in line for line in wide)
    assert json.loads(ws.run("history", "--json").stdout)[0]["detail"].endswith("1795000000")


def test_verbose_lines_carry_no_epoch(ws: Workspace) -> None:
    component = command_component(["false"], {"fix": ["true"]})
    component["strategies"]["fix"]["approval"] = "required"
    ws.write_config(base_config({"app": component}))
    result = ws.run("--verbose", "recover")

    traced = [line for line in result.stderr.splitlines() if line.startswith("audit ")]
    assert any("event=approval_requested" in line for line in traced), result.stderr
    assert not EPOCH.search(result.stderr), result.stderr


def help_of(*command: str) -> str:
    result = subprocess.run(
        [RECOVERY, *command, "--help"],
        capture_output=True,
        text=True,
        env=child_env({"COLUMNS": "80"}),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def command_tree() -> Any:
    import typer

    from recovery_cli.cli import app

    return typer.main.get_command(app)


def every_command() -> list[tuple[str, ...]]:
    """Every command and subcommand, as the words that name it."""
    found: list[tuple[str, ...]] = []
    for name, command in command_tree().commands.items():
        found.append((name,))
        found += [(name, sub) for sub in getattr(command, "commands", {})]
    return found


def flat(text: str) -> str:
    return " ".join(text.split())


def test_help_names_values_and_never_a_python_type() -> None:
    for command in [(), *every_command()]:
        text = help_of(*command)
        assert not re.search(r"<[a-z][a-z_ \[\],|]*>", text), (command, text)
        assert "{" not in text.splitlines()[0], (command, text)
        assert "[[" not in text, (command, text)
    assert "COMPONENT...  Components to recover" in help_of("recover")
    assert "Usage: recovery check [OPTIONS] COMPONENT\n" in help_of("check")
    assert "--last DURATION" in help_of("history") and "--since TIME" in help_of("history")


def test_help_shows_whole_descriptions() -> None:
    root = command_tree()
    listing = flat(help_of())
    assert "..." not in help_of().split("Commands:")[1]
    for name, command in root.commands.items():
        summary = flat((command.help or "").split("\n\n")[0])
        assert f"{name} {summary}" in listing, name
    for command in every_command():
        shown = flat(help_of(*command))
        target = root
        for part in command:
            target = target.commands[part]
        for param in target.params:
            described = getattr(param, "help", None)
            if described:
                assert flat(described) in shown, (command, param.name)
    assert "/etc/recovery-cli/recovery_config.yml" in help_of()  # not broken at its hyphen


@pytest.mark.parametrize(
    "args",
    [
        ["metrics", "--output", "/missing/dir/file"],
        ["metrics", "--output", "/"],
        ["metrics", "--output", "/proc/recovery.prom"],
        ["history", "--last", "nonsense"],
        ["history", "--since", "garbage"],
        ["history", "--until", "garbage"],
        ["history", "--limit", "0"],
        ["history", "--limit", "x"],
        ["test", "--junit", "/missing/dir/report.xml"],
        ["test", "--junit", "/"],
        ["test", "--junit", "/proc/report.xml"],
        ["status", "--bogus"],
        ["recover", "--prompt-timeout", "soon"],
        ["disable", "web", "--for", "2x", "--reason", "r"],
        ["watch", "--interval", "abc"],
    ],
    ids=" ".join,
)
def test_a_bad_path_or_value_is_one_line_and_exit_2(ws: Workspace, args: list[str]) -> None:
    ws.write_config(base_config({"web": command_component(["true"], {"restart": ["true"]})}))
    result = ws.run(*args)

    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stdout == "", result.stderr
    assert "Traceback" not in result.stderr


def test_a_junit_path_that_cannot_be_written_is_refused_before_the_drill(ws: Workspace) -> None:
    ws.write_config(base_config({"web": command_component(["true"], {"restart": ["true"]})}))
    result = ws.run("test", "--junit", "/missing/dir/report.xml")

    assert result.returncode == 2
    assert result.stderr == "--junit: directory /missing/dir does not exist\n"
    assert not ws.state.exists() or not ws.events("drill"), "the drill did not run"


@pytest.mark.parametrize(
    "args", [["--help"], ["status", "--no-probe"], ["history"], ["approve"]], ids=" ".join
)
def test_rich_is_imported_only_for_a_table_on_a_terminal(lived: Workspace, args: list[str]) -> None:
    where = ["--config", str(lived.config), "--state-dir", str(lived.state)]
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "recovery_cli", *where, *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env=child_env(),
    )
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()]
    assert "typer" in imported
    assert ("tabulate" in imported) == (args != ["--help"])  # a table, in its plain form
    assert not [m for m in imported if m.split(".")[0] == "rich"], result.stdout


def test_fitting_drops_the_least_important_first_and_never_a_kept_column() -> None:
    columns = [
        render.Column("component", rank=100, keep=True, fold=10),
        render.Column("health", rank=90, keep=True),
        render.Column("detail", rank=10, fold=8),
        render.Column("kind", rank=20),
    ]
    natural = [44, 8, 60, 7]

    roomy = render.fit_widths(columns, natural, 200)
    narrow = render.fit_widths(columns, natural, 40)
    tiny = render.fit_widths(columns, natural, 12)

    assert roomy == natural
    assert narrow == [40 - 2 - 8 - 2 - 7 - 2 - 8, 8, 8, 7]  # detail cut first, then component
    assert render.table_width(narrow) == 40
    assert tiny[2] is None and tiny[3] is None and render.table_width(tiny) <= 12
    assert tiny[0] is not None and tiny[1] is not None


def test_relative_times_and_spans() -> None:
    assert render.relative(1000 + 42 * 60, 1000) == "in 42m"
    assert render.relative(1000 - 3 * 3600 - 5 * 60, 1000) == "3h05m ago"
    assert render.relative(1000, 1000.4) == "now"
    assert render.span(280) == "4m40s" and render.span(2 * 86400 + 3600) == "2d1h"
    assert render.iso(1_795_000_000) == "2026-11-18T11:06:40Z"
