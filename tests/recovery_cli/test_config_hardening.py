"""Hostile configs and CLI numbers: every one exits 0 or 2 with ``file:line: key: message``,
quickly, in bounded memory, never with a traceback, and never echoing a secret."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from recovery_cli.config import parse_config
from recovery_cli.errors import ConfigError
from recovery_cli.graph import find_cycle, topological_order
from tests.support.cli import Workspace, child_env

GOOD = """\
version: 1
components:
  app:
    kind: command
    settings:
      probe: ["true"]
    chain: [fix]
    strategies:
      fix: {params: {command: ["true"]}}
"""
SECRET = "s3cr3t-Pw"
# the state dir's own files and dirs, which STATE/<component>/ must never be
RESERVED_NAMES = [
    "audit",
    "components",
    "errors",
    "keys",
    "lock",
    "locks",
    "processes",
    "state",
    "tmp",
    "torn",
]


def fails(ws: Workspace, text: str, *args: str) -> str:
    """Run ``status --no-probe`` (or ``args``) on ``text``: exit 2, no traceback; stderr."""
    ws.write_config(text)
    result = ws.run(*(args or ("status", "--no-probe")), timeout=20)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    return result.stderr


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.yml")
    return caught.value.lines()


def with_settings(extra: str) -> str:
    return GOOD.replace('      probe: ["true"]\n', f'      probe: ["true"]\n{extra}')


def with_component(extra: str) -> str:
    return GOOD.replace("    chain: [fix]\n", f"{extra}    chain: [fix]\n")


# -- 1. inline secrets, anywhere in the document -------------------------------------------

SECRETS = [
    (
        "redis url password parameter",
        f'version: 1\ncomponents:\n  cache:\n    kind: redis\n    settings: {{url: "redis://h:6379/0?password={SECRET}"}}\n    chain: [reconnect]\n',
        "components.cache.settings.url",
    ),
    (
        "argv redis-cli -u with userinfo",
        GOOD.replace(
            'probe: ["true"]', f'probe: ["redis-cli", "-u", "redis://:{SECRET}@127.0.0.1:6379"]'
        ),
        "components.app.settings.probe[2]",
    ),
    (
        "argv curl --url= with userinfo",
        GOOD.replace('probe: ["true"]', f'probe: ["curl", "--url=https://user:{SECRET}@h/x"]'),
        "components.app.settings.probe[1]",
    ),
    (
        "alerting webhook userinfo",
        GOOD + f'alerting: {{webhook_url: "http://user:{SECRET}@hooks.example/x"}}\n',
        "alerting.webhook_url",
    ),
    (
        "alertmanager token parameter",
        GOOD + f'alerting: {{alertmanager_url: "https://am.example/api?x=1&token={SECRET}"}}\n',
        "alerting.alertmanager_url",
    ),
    (
        "docker base_url userinfo",
        with_component(
            f'    service: {{method: docker, container: app, base_url: "tcp://u:{SECRET}@docker:2375"}}\n'
        ),
        "components.app.service.base_url",
    ),
    (
        "strategy params nested",
        GOOD.replace(
            'command: ["true"]',
            f'command: ["true"], deep: {{list: [1, {{u: "amqp://guest:{SECRET}@mq/"}}]}}',
        ),
        "components.app.strategies.fix.params.deep.list[1].u",
    ),
    (
        "strategy argv api_key parameter",
        GOOD.replace(
            'command: ["true"]', f'command: ["curl", "https://api.example/v1?api_key={SECRET}"]'
        ),
        "components.app.strategies.fix.params.command[1]",
    ),
    (
        "degraded mode hook",
        GOOD
        + f'degraded_modes:\n  m:\n    component: app\n    on_enter: {{command: ["curl", "-d", "x", "https://h/?access_token={SECRET}"]}}\n',
        "degraded_modes.m.on_enter.command[3]",
    ),
    (
        "service restart argv",
        with_component(
            f'    service: {{method: command, restart: ["curl", "ftp://op:{SECRET}@files/restart"]}}\n'
        ),
        "components.app.service.restart[1]",
    ),
    (
        "userinfo in the middle of text",
        with_settings(f'      x: "see mysql://root:{SECRET}@db:3306/app for details"\n'),
        "components.app.settings.x",
    ),
    (
        "secret in a mapping key",
        with_settings(f'      "https://u:{SECRET}@h/": 1\n'),
        "components.app.settings",
    ),
    (
        "secret-named key",
        GOOD.replace('command: ["true"]', f'command: ["true"], api_token: "{SECRET}"'),
        "components.app.strategies.fix.params.api_token",
    ),
]


@pytest.mark.parametrize(("why", "text", "key"), SECRETS, ids=[s[0] for s in SECRETS])
def test_inline_secret_is_a_config_error_naming_the_key(
    ws: Workspace, why: str, text: str, key: str
) -> None:
    stderr = fails(ws, text)
    assert SECRET not in stderr
    line = next(line for line in stderr.splitlines() if f": {key}:" in line)
    assert line.startswith(f"{ws.config}:") and "_env'" in line


def test_inline_secret_is_not_echoed_by_other_checks(ws: Workspace) -> None:
    """An unknown strategy message quotes its name: a URL with a password must not show."""
    stderr = fails(ws, GOOD.replace("chain: [fix]", f'chain: ["http://u:{SECRET}@h"]'))
    assert SECRET not in stderr and "components.app.chain[0]" in stderr


def test_urls_without_credentials_stay_valid() -> None:
    text = with_settings("      password_env: APP_PASSWORD\n").replace(
        'command: ["true"]', 'command: ["curl", "https://h.example/x?user=me&page=2", "a@b.c"]'
    )
    assert parse_config(text, "cfg.yml").components["app"].kind == "command"


# -- 2. bombs: size, depth, file type ------------------------------------------------------


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [" + ", ".join(['"x"'] * width) + "]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def chain_config(length: int) -> str:
    block = 'kind: command, settings: {probe: ["true"]}, chain: [f], strategies: {f: {params: {command: ["true"]}}}'
    rows = [f"  c{i}: {{{block}, depends_on: [c{i + 1}]}}" for i in range(length - 1)]
    rows.append(f"  c{length - 1}: {{{block}}}")
    return "version: 1\ncomponents:\n" + "\n".join(rows) + "\n"


def test_alias_bomb_is_refused_fast(ws: Workspace) -> None:
    started = time.monotonic()
    stderr = fails(ws, alias_bomb())
    assert time.monotonic() - started < 5
    assert "more than 50000 values" in stderr and stderr.startswith(f"{ws.config}:")


def test_recursive_alias_is_refused(ws: Workspace) -> None:
    assert "refers to the value that contains it" in fails(ws, GOOD + "x: &x [1, *x]\n")


@pytest.mark.parametrize(
    "text",
    [
        "version: 1\ncomponents: " + "{a: " * 990 + "1" + "}" * 990 + "\n",
        "version: 1\nx: " + "[" * 990 + "]" * 990 + "\n",
        # 21 levels at most as written, 42 once the aliases are followed
        "a: &a " + "[" * 20 + "]" * 20 + "\nb: &b " + "[" * 20 + "*a" + "]" * 20 + "\nc: [*b]\n",
    ],
    ids=["flow-mapping-990", "flow-list-990", "aliases-stacked"],
)
def test_deep_nesting_is_refused(ws: Workspace, text: str) -> None:
    assert "nested more than 40 levels" in fails(ws, text)


def test_long_dependency_chain_within_limits_works(ws: Workspace) -> None:
    ws.write_config(chain_config(1000))
    result = ws.run("status", "--no-probe", timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr


def test_dependency_chain_of_3000_is_a_config_error(ws: Workspace) -> None:
    stderr = fails(ws, chain_config(3000))
    assert len(stderr.splitlines()) == 1


def test_graph_functions_are_iterative() -> None:
    chain = {f"c{i}": [f"c{i + 1}"] for i in range(50_000)}
    assert find_cycle(chain) == []
    assert topological_order(chain, {})[:2] == ["c49999", "c49998"]
    chain["c49999"] = ["c0"]
    cycle = find_cycle(chain)
    assert cycle[0] == cycle[-1] == "c0" and len(cycle) == 50_001
    with pytest.raises(ValueError):
        topological_order(chain, {})


def test_topological_order_keeps_priority_then_name() -> None:
    graph = {"db": [], "api": ["db"], "web": ["api"], "cache": [], "batch": []}
    priority = {"db": 1, "cache": 0, "batch": 2}
    assert topological_order(graph, priority) == ["cache", "db", "batch", "api", "web"]


@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "directory"])
def test_config_that_is_not_a_regular_file_is_refused(tmp_path: Path, special: str) -> None:
    path = Path(special)
    if special == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
    elif special == "directory":
        path = tmp_path / "dir"
        path.mkdir()
    ws = Workspace(tmp_path)
    argv = [sys.executable, "-m", "recovery_cli", "--config", str(path),
            "--state-dir", str(ws.state), "status", "--no-probe"]  # fmt: skip
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=20, env=child_env(), stdin=subprocess.DEVNULL
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{path}: cannot read config: ")
    assert len(result.stderr.splitlines()) == 1


def test_oversized_config_is_refused(ws: Workspace) -> None:
    stderr = fails(ws, GOOD + "# " + "x" * (1024 * 1024) + "\n")
    assert stderr == f"{ws.config}: config is larger than 1024 KiB\n"


@pytest.mark.parametrize(
    ("value", "why"),
    [("2026-02-30", "day is out of range"), ("1" * 5000, "4300 digits")],
    ids=["impossible-date", "huge-integer"],
)
def test_value_python_cannot_build_is_a_yaml_error(ws: Workspace, value: str, why: str) -> None:
    stderr = fails(ws, with_settings(f"      x: {value}\n"))
    assert stderr.startswith(f"{ws.config}:7: ") and why in stderr


def test_odd_keys_stay_on_one_line() -> None:
    lines = problems(with_settings('      "a[b\\nc\\u001b[31m": 1\n'))
    assert len(lines) == 1 and "\n" not in lines[0] and "\x1b" not in lines[0]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (GOOD.replace('probe: ["true"]', 'probe: ["true", "a\\0b"]'), "components.app.settings.probe"),
        (GOOD + 'degraded_modes:\n  m: {component: app, on_exit: {command: ["x\\0"]}}\n', "degraded_modes.m.on_exit.command[0]"),
        (GOOD + 'state_dir: "/var/lib/x\\0y"\n', "state_dir"),
    ],
    ids=["probe-argv", "hook-argv", "state-dir"],
)  # fmt: skip
def test_nul_in_an_argv_item_or_path_is_a_config_error(text: str, key: str) -> None:
    assert any(f": {key}: " in line for line in problems(text)), problems(text)


# -- 3. numbers: finite and bounded ---------------------------------------------------------

NUMBERS = [
    ("defaults", "cooldown_seconds", "100000000000000000000"),
    ("defaults", "cooldown_seconds", str(7 * 86400 + 1)),
    ("defaults", "max_attempts_per_hour", "1001"),
    ("defaults", "step_timeout_seconds", ".inf"),
    ("defaults", "probe_timeout_seconds", ".nan"),
    ("defaults", "approval_ttl_seconds", "100000000000000000000"),
    ("defaults", "lock_wait_seconds", ".inf"),
    ("defaults", "lock_wait_seconds", "301"),
    ("defaults", "step_timeout_seconds", "true"),
    ("defaults.retry", "initial_delay", "3601"),
    ("defaults.retry", "max_delay", ".inf"),
    ("defaults.retry", "multiplier", "11"),
    ("audit", "retention_days", "1.0e+10"),
    ("audit", "retention_days", "3651"),
    ("alerting", "timeout_seconds", "61"),
]


@pytest.mark.parametrize(
    ("section", "key", "value"), NUMBERS, ids=[f"{s}.{k}={v}" for s, k, v in NUMBERS]
)
def test_unbounded_core_number_is_a_config_error(
    ws: Workspace, section: str, key: str, value: str
) -> None:
    outer, _, inner = section.partition(".")
    block = f"{inner}: {{{key}: {value}}}" if inner else f"{key}: {value}"
    stderr = fails(ws, GOOD + f"{outer}: {{{block}}}\n")
    assert f": {section}.{key}: " in stderr


COMPONENT_NUMBERS = [
    (
        "components.app.cooldown_seconds",
        with_component("    cooldown_seconds: 100000000000000000000\n"),
    ),
    ("components.app.max_attempts_per_hour", with_component("    max_attempts_per_hour: 100000\n")),
    ("components.app.step_timeout_seconds", with_component("    step_timeout_seconds: .inf\n")),
    ("components.app.probe_timeout_seconds", with_component("    probe_timeout_seconds: 3601\n")),
    (
        "components.app.strategies.fix.timeout_seconds",
        GOOD.replace("{params:", "{timeout_seconds: .inf, params:"),
    ),
    (
        "components.app.strategies.fix.retry.multiplier",
        GOOD.replace("{params:", "{retry: {multiplier: .nan}, params:"),
    ),
    (
        "components.app.service.timeout_seconds",
        with_component(
            '    service: {method: command, restart: ["true"], timeout_seconds: .inf}\n'
        ),
    ),
    (
        "components.app.service.ready_timeout_seconds",
        with_component(
            '    service: {method: command, restart: ["true"], ready_timeout_seconds: 1.0e+9}\n'
        ),
    ),
    (
        "degraded_modes.m.on_enter.timeout_seconds",
        GOOD
        + 'degraded_modes:\n  m: {component: app, on_enter: {command: ["true"], timeout_seconds: .inf}}\n',
    ),
    (
        "components.app.settings.probe_timeout_seconds",
        with_settings("      probe_timeout_seconds: .inf\n"),
    ),
    (
        "components.app.settings.probe_timeout_seconds",
        with_settings("      probe_timeout_seconds: 0\n"),
    ),
    (
        "components.app.settings.probe_timeout_seconds",
        with_settings("      probe_timeout_seconds: true\n"),
    ),
    (
        "components.app.settings.probe_timeout_seconds",
        with_settings("      probe_timeout_seconds: null\n"),
    ),
    (
        "components.app.strategies.fix.params.timeout_seconds",
        GOOD.replace('command: ["true"]', 'command: ["true"], timeout_seconds: .inf'),
    ),
    (
        "components.app.strategies.fix.params.timeout_seconds",
        GOOD.replace('command: ["true"]', 'command: ["true"], timeout_seconds: 3601'),
    ),
]


@pytest.mark.parametrize(
    ("key", "text"),
    COMPONENT_NUMBERS,
    ids=[f"{k}-{i}" for i, (k, _) in enumerate(COMPONENT_NUMBERS)],
)
def test_unbounded_component_number_is_a_config_error(key: str, text: str) -> None:
    assert any(f": {key}: " in line for line in problems(text)), problems(text)


def test_lock_wait_inf_through_the_cli(ws: Workspace) -> None:
    assert ": defaults.lock_wait_seconds: " in fails(
        ws, GOOD + "defaults: {lock_wait_seconds: .inf}\n"
    )


HANDLER_NUMBERS = [
    (
        "redis",
        "settings: {url: 'redis://127.0.0.1:6379/0', connect_timeout_seconds: .inf}",
        "settings.connect_timeout_seconds",
    ),
    (
        "redis",
        "settings: {url: 'redis://127.0.0.1:6379/0', socket_timeout_seconds: 1.0e+20}",
        "settings.socket_timeout_seconds",
    ),
    (
        "redis",
        "settings: {url: 'redis://127.0.0.1:6379/0', memory_warn_ratio: .nan}",
        "settings.memory_warn_ratio",
    ),
    (
        "chromadb",
        "settings: {url: 'http://127.0.0.1:8000', heartbeat_timeout_seconds: .inf}",
        "settings.heartbeat_timeout_seconds",
    ),
    ("chromadb", "settings: {url: 'http://[::1', probe_k: 5}", "settings.url"),
    (
        "system",
        "settings: {memory: {min_available_percent: .nan}}",
        "settings.memory.min_available_percent",
    ),
    ("system", "settings: {disk: {max_used_percent: 101}}", "settings.disk.max_used_percent"),
    (
        "system",
        "settings: {processes: [{name: w, pidfile: /run/w.pid, grace_seconds: .inf}]}",
        "settings.processes.0.grace_seconds",
    ),
    (
        "system",
        "settings: {processes: [{name: [w], pidfile: /run/w.pid}]}",
        "settings.processes.0.name",
    ),
    (
        "system",
        "strategies: {memory_gc: {params: {settle_seconds: 1.0e+20}}}",
        "strategies.memory_gc.params.settle_seconds",
    ),
    (
        "system",
        "strategies: {disk_cleanup: {params: {roots: 5}}}",
        "strategies.disk_cleanup.params.roots",
    ),
    (
        "openwebui",
        "settings: {url: 'http://127.0.0.1:8080'}, strategies: {token_refresh: {params: {max_signins_per_window: true}}}",
        "strategies.token_refresh.params.max_signins_per_window",
    ),
    (
        "redis",
        "settings: {url: 'redis://127.0.0.1:6379/0'}, strategies: {reconnect: {params: {max_wait_seconds: .inf}}}",
        "strategies.reconnect.params.max_wait_seconds",
    ),
]


@pytest.mark.parametrize(
    ("kind", "body", "key"), HANDLER_NUMBERS, ids=[f"{k}:{key}" for k, _, key in HANDLER_NUMBERS]
)
def test_handler_numbers_are_finite_and_bounded(kind: str, body: str, key: str) -> None:
    chain = {
        "redis": "reconnect",
        "chromadb": "query_retry",
        "system": "memory_gc",
        "openwebui": "token_refresh",
    }[kind]
    text = f"version: 1\ncomponents:\n  c: {{kind: {kind}, chain: [{chain}], {body}}}\n"
    lines = problems(text)
    assert any(f": components.c.{key}: " in line for line in lines), lines


# -- 4. CLI durations and times ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("history", "--last", "99999999999w"),
        ("history", "--last", "0s"),
        ("history", "--since", "0001-01-01T00:00+05:00"),
        ("history", "--since", "9999-12-31T23:59-05:00"),
        ("history", "--until", "1969-12-31"),
        ("disable", "app", "--for", "99999999999w", "--reason", "x"),
        ("disable", "app", "--for", "0h", "--reason", "x"),
        ("disable", "app", "--for", "3651d", "--reason", "x"),
    ],
    ids=lambda args: " ".join(args),
)
def test_out_of_range_duration_or_time_is_a_usage_error(
    ws: Workspace, args: tuple[str, ...]
) -> None:
    stderr = fails(ws, GOOD, *args)
    assert len(stderr.splitlines()) == 1 and ("duration" in stderr or "time" in stderr)


def test_durations_within_range_still_work(ws: Workspace) -> None:
    ws.write_config(GOOD)
    assert ws.run("history", "--last", "3650d").returncode == 0
    assert ws.run("disable", "app", "--for", "520w", "--reason", "x").returncode == 0


# -- 5. and 6. names and the state dir --------------------------------------------------------


@pytest.mark.parametrize("name", RESERVED_NAMES)
def test_reserved_component_name_is_a_config_error(name: str) -> None:
    lines = problems(GOOD.replace("  app:", f"  {name}:"))
    assert any(f"cfg.yml:3: components.{name}: " in line and "reserved" in line for line in lines)


def test_component_named_lock_through_the_cli(ws: Workspace) -> None:
    stderr = fails(ws, GOOD.replace("  app:", "  lock:"))
    assert ": components.lock: " in stderr
    assert not (ws.state / "lock").is_dir()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (GOOD + "degraded_modes:\n  Bad Mode: {component: app}\n", "degraded_modes.Bad Mode"),
        (with_component("    depends_on: ['../etc']\n"), "components.app.depends_on[0]"),
        (GOOD.replace("  app:", "  " + "a" * 64 + ":"), "components." + "a" * 64),
    ],
    ids=["degraded-mode-name", "depends-on-entry", "name-too-long"],
)
def test_names_keep_the_pattern(text: str, key: str) -> None:
    assert any(f": {key}: " in line for line in problems(text)), problems(text)


def test_empty_state_dir_is_a_config_error(ws: Workspace) -> None:
    stderr = fails(ws, GOOD + 'state_dir: ""\n')
    assert f"{ws.config}:10: state_dir: " in stderr


# -- fuzz: hundreds of generated hostile configs through the real CLI -----------------------

FUZZ_CASES = 240
VALID_SHARE = 0.1  # plus the mutations that happen to leave a valid config
SHARED_BLOCK = """\
  base: &base {kind: command, settings: {probe: ["true"]}, chain: [fix], strategies: {fix: {params: {command: ["true"]}}}}
  copy: *base
"""
MAX_SECONDS = 2.0
MAX_RSS_KIB = 200 * 1024

SECRET_URLS = [
    "redis://:pw@127.0.0.1:6379", "--url=https://u:pw@h/x", "https://h/?token=abc",
    "postgres://h/db?sslmode=require&password=x",
]  # fmt: skip
HOSTILE_SCALARS: list[Any] = [
    10**30, 2**64, -1, 0, -0.0, 1e308, float("inf"), float("-inf"), float("nan"), True, None,
    "", " ", "\x00", "ключ", "💥" * 50, "\u202e\u200b", "x" * 20_000, "lock", "../../etc",
    *SECRET_URLS, [], {}, ["true"], [None], {"a": {"b": []}},
]  # fmt: skip
NUMBER_KEYS = [
    ("defaults", "cooldown_seconds"), ("defaults", "max_attempts_per_hour"),
    ("defaults", "step_timeout_seconds"), ("defaults", "probe_timeout_seconds"),
    ("defaults", "approval_ttl_seconds"), ("defaults", "lock_wait_seconds"),
    ("defaults", "retry", "multiplier"), ("defaults", "retry", "max_delay"),
    ("defaults", "retry", "attempts"), ("audit", "retention_days"), ("alerting", "timeout_seconds"),
]  # fmt: skip
COMPONENT_KEYS = [
    ("settings", "probe"), ("settings", "probe_timeout_seconds"), ("depends_on",), ("chain",),
    ("strategies", "fix", "params", "command"), ("strategies", "fix", "params", "timeout_seconds"),
    ("strategies", "fix", "timeout_seconds"), ("service",), ("mode",), ("kind",), ("on_failure",),
    ("cooldown_seconds",), ("settings", "ключ"), ("strategies", "fix", "params", "deep", "x"),
]  # fmt: skip


def valid_config(rng: random.Random) -> dict[str, Any]:
    names = rng.sample(["app", "db", "web", "cache", "worker", "q-1", "x_2"], rng.randint(1, 4))
    components: dict[str, Any] = {}
    for index, name in enumerate(names):
        components[name] = {
            "kind": "command",
            "settings": {"probe": ["true"], "probe_timeout_seconds": rng.choice([1, 2.5, 3600])},
            "chain": ["fix"],
            "strategies": {"fix": {"params": {"command": ["true"]}}},
            "depends_on": names[index + 1 : index + 1 + rng.randint(0, 2)],
        }
    return {
        "version": 1,
        "defaults": {"cooldown_seconds": rng.choice([0, 300, 604800]), "lock_wait_seconds": rng.choice([0, 1.5, 300])},
        "audit": {"retention_days": rng.choice([1, 30, 3650])},
        "components": components,
    }  # fmt: skip


def set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        if not isinstance(data.get(part), dict):
            data[part] = {}
        data = data[part]
    data[path[-1]] = value


def mutate_data(rng: random.Random, data: dict[str, Any]) -> None:
    value = rng.choice(HOSTILE_SCALARS)
    roll = rng.random()
    if roll < 0.3:
        set_path(data, rng.choice(NUMBER_KEYS), value)
    elif roll < 0.7:
        name = rng.choice(list(data["components"]))
        set_path(data["components"][name], rng.choice(COMPONENT_KEYS), value)
    elif roll < 0.8:
        data["components"][rng.choice([*RESERVED_NAMES, "Ünïcode", "a" * 70])] = data[
            "components"
        ].popitem()[1]
    elif roll < 0.9:
        data[rng.choice(["state_dir", "alerting", "degraded_modes", "ключ", "version"])] = value
    else:
        set_path(
            data,
            ("alerting", rng.choice(["webhook_url", "alertmanager_url"])),
            rng.choice(SECRET_URLS),
        )


def nested(rng: random.Random) -> str:
    depth = rng.choice([30, 41, 200, 990])
    opener, closer = rng.choice([("{a: ", "}"), ("[", "]"), ("[{b: ", "}]")])
    return opener * depth + "1" + closer * depth


def mutate_text(rng: random.Random, text: str) -> str:
    roll = rng.random()
    if roll < 0.2:
        return (
            text
            + "bomb:\n"
            + "".join(
                "  " + line + "\n"
                for line in alias_bomb(rng.randint(2, 9), rng.randint(2, 12)).splitlines()
            )
        )
    if roll < 0.35:
        return text + f"deep: {nested(rng)}\n"
    if roll < 0.45:
        return text.replace("components:", "x: &x [1, *x]\ncomponents:", 1)
    if roll < 0.55:
        cut = rng.randrange(len(text))
        return (
            text[:cut]
            + rng.choice(
                ["[", "{", "&", "*nope", "!!python/object:os.system", "\t", "\x07", ": :", "'"]
            )
            + text[cut:]
        )
    if roll < 0.65:
        return text + rng.choice(
            [
                "t: !!timestamp 2026-02-30\n",
                f"n: {'9' * 5000}\n",
                "b: !!binary '%%%'\n",
                "s: !!set {a, b}\n",
            ]
        )
    if roll < 0.75:
        return (
            text.replace("components:", 'shared: &s {probe: ["true"]}\ncomponents:', 1)
            + "merge: {<<: *s, probe: [x]}\n"
        )
    if roll < 0.85:
        return text[: rng.randrange(len(text))]
    return text + "\n".join(f"k{i}: *undefined{i}" for i in range(3)) + "\n"


def hostile_config(rng: random.Random) -> bytes:
    """About one in eight is valid (some through an anchor and an alias); the rest break
    the config in one to three ways, on the data, on the text or both."""
    data = valid_config(rng)
    if rng.random() < VALID_SHARE:
        text = yaml.safe_dump(data, sort_keys=False)
        if rng.random() < 0.5:  # the same component block twice, through an anchor and an alias
            text = text.replace("components:\n", "components:\n" + SHARED_BLOCK, 1)
        return text.encode()
    mutations = rng.randint(0, 2)
    for _ in range(mutations):
        mutate_data(rng, data)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=rng.random() < 0.5)
    if mutations == 0 or rng.random() < 0.5:
        text = mutate_text(rng, text)
    raw = text.encode()
    return raw if rng.random() > 0.03 else b"\xff\xfe" + raw


@dataclass(frozen=True)
class Outcome:
    index: int
    code: int
    seconds: float
    rss_kib: int
    output: str


def run_measured(argv: list[str], workdir: Path, index: int) -> Outcome:
    """One CLI run with its own wall time and peak RSS (``wait4``'s rusage)."""
    out_path = workdir / f"out{index}.txt"
    with out_path.open("wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=child_env()
        )
        killer = threading.Timer(30, proc.kill)  # a hang fails the case, not the whole run
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        seconds = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    output = out_path.read_text(errors="replace")
    return Outcome(index, proc.returncode, seconds, usage.ru_maxrss, output)


def fuzz_case(tmp: Path, rng_seed: int) -> Callable[[int], Outcome]:
    def run(index: int) -> Outcome:
        config = tmp / f"c{index}.yml"
        config.write_bytes(hostile_config(random.Random(rng_seed * 100_003 + index)))
        argv = [sys.executable, "-m", "recovery_cli", "--config", str(config),
                "--state-dir", tempfile.mkdtemp(dir=tmp), "status", "--no-probe"]  # fmt: skip
        return run_measured(argv, tmp, index)

    return run


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fuzz_hostile_configs_exit_0_or_2_fast_and_small(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(fuzz_case(tmp_path, 20261201), range(FUZZ_CASES)))
    bad = [
        (o.index, o.code, round(o.seconds, 2), o.rss_kib, o.output[-400:])
        for o in outcomes
        if o.code not in (0, 2)
        or "Traceback" in o.output
        or o.seconds >= MAX_SECONDS
        or o.rss_kib >= MAX_RSS_KIB
        or (o.code == 2 and not o.output.strip())
    ]
    assert not bad, bad
    valid = sum(o.code == 0 for o in outcomes) / len(outcomes)
    assert 0.08 <= valid <= 0.25, f"{valid:.0%} of the generated configs were valid"
