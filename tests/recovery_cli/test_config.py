"""Broken configs: each exits 2 with one line per problem naming file, line and key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from recovery_cli.config import ComponentConfig, load_config, parse_config
from recovery_cli.errors import ConfigError
from tests.support.cli import Workspace

GOOD = """\
version: 1
defaults:
  cooldown_seconds: 300
components:
  app:
    kind: command
    settings:
      probe: ["true"]
    chain: [restart_app]
    strategies:
      restart_app: {params: {command: ["true"]}}
"""

# (description, replacement config text, key expected in the message)
BROKEN = [
    ("unknown top-level key", GOOD + "colour: blue\n", "colour"),
    ("wrong version", GOOD.replace("version: 1", "version: 2"), "version"),
    ("missing version", GOOD.replace("version: 1\n", ""), "version"),
    (
        "negative cooldown",
        GOOD.replace("cooldown_seconds: 300", "cooldown_seconds: -5"),
        "defaults.cooldown_seconds",
    ),
    (
        "zero cap",
        GOOD.replace("cooldown_seconds: 300", "max_attempts_per_hour: 0"),
        "defaults.max_attempts_per_hour",
    ),
    (
        "string timeout",
        GOOD.replace("cooldown_seconds: 300", "step_timeout_seconds: soon"),
        "defaults.step_timeout_seconds",
    ),
    ("unknown kind", GOOD.replace("kind: command", "kind: postgres"), "components.app.kind"),
    (
        "unknown strategy in chain",
        GOOD.replace("chain: [restart_app]", "chain: [reboot]"),
        "components.app.chain[0]",
    ),
    ("empty chain", GOOD.replace("chain: [restart_app]", "chain: []"), "components.app.chain"),
    ("missing chain", GOOD.replace("    chain: [restart_app]\n", ""), "components.app.chain"),
    (
        "unknown component key",
        GOOD.replace("    chain:", "    chian: [x]\n    chain:"),
        "components.app.chian",
    ),
    ("bad mode", GOOD.replace("    chain:", "    mode: yolo\n    chain:"), "components.app.mode"),
    (
        "bad priority",
        GOOD.replace("    chain:", "    priority: urgent\n    chain:"),
        "components.app.priority",
    ),
    (
        "unknown dependency",
        GOOD.replace("    chain:", "    depends_on: [ghost]\n    chain:"),
        "components.app.depends_on[0]",
    ),
    (
        "self dependency cycle",
        GOOD.replace("    chain:", "    depends_on: [app]\n    chain:"),
        "components.app.depends_on",
    ),
    (
        "inline password",
        GOOD.replace('probe: ["true"]', 'probe: ["true"]\n      password: hunter2'),
        "components.app.settings.password",
    ),
    (
        "password in url",
        GOOD.replace('probe: ["true"]', 'probe: ["true"]\n      env: "redis://:pw@host:6379"'),
        "components.app.settings.env",
    ),
    (
        "probe not a list",
        GOOD.replace('probe: ["true"]', "probe: /bin/true --now"),
        "components.app.settings.probe",
    ),
    (
        "strategy without command",
        GOOD.replace('{params: {command: ["true"]}}', "{params: {}}"),
        "components.app.strategies.restart_app.params.command",
    ),
    (
        "bad approval value",
        GOOD.replace("{params:", "{approval: maybe, params:"),
        "components.app.strategies.restart_app.approval",
    ),
    (
        "on_failure unknown strategy",
        GOOD.replace("    chain:", "    on_failure: {oops: [nope]}\n    chain:"),
        "components.app.on_failure.oops[0]",
    ),
    (
        "service systemd without unit",
        GOOD.replace("    chain:", "    service: {method: systemd}\n    chain:"),
        "components.app.service",
    ),
    (
        "service unknown method",
        GOOD.replace("    chain:", "    service: {method: telepathy}\n    chain:"),
        "components.app.service.method",
    ),
    (
        "degraded mode for unknown component",
        GOOD + "degraded_modes:\n  x_down: {component: nothere}\n",
        "degraded_modes.x_down.component",
    ),
    (
        "dependency listed twice",
        GOOD.replace("    chain:", "    depends_on: [db, db]\n    chain:")
        + '  db:\n    kind: command\n    settings: {probe: ["true"]}\n'
        + '    chain: [fix]\n    strategies: {fix: {params: {command: ["true"]}}}\n',
        "components.app.depends_on[1]: 'db' is listed twice",
    ),
    ("bad component name", GOOD.replace("  app:", "  App Server:"), "components"),
    (
        "duplicate key",
        GOOD.replace(
            "    chain: [restart_app]", "    chain: [restart_app]\n    chain: [restart_app]"
        ),
        "components.app.chain",
    ),
    (
        "yaml syntax error",
        GOOD.replace("chain: [restart_app]", "chain: [restart_app"),
        "YAML syntax error",
    ),
    ("not a mapping", "- just\n- a list\n", "must be a mapping"),
    (
        "retry attempts zero",
        GOOD.replace("cooldown_seconds: 300", "retry: {attempts: 0}"),
        "defaults.retry.attempts",
    ),
    (
        "hook as shell string",
        GOOD + "degraded_modes:\n  m: {component: app, on_enter: {command: 'echo hi'}}\n",
        "degraded_modes.m.on_enter.command",
    ),
]


@pytest.mark.parametrize(("why", "text", "key"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_config_names_the_key(why: str, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.yml")
    lines = caught.value.lines()
    assert any(key in line for line in lines), lines
    assert all(line.startswith("cfg.yml:") for line in lines)


OPENWEBUI = """\
version: 1
components:
  chat:
    kind: openwebui
    settings:
      url: http://127.0.0.1:1
      api_kye_env: OWUI_KEY
    chain: [model_failover]
    strategies:
      model_failover: {params: {fallback_modle: small}}
"""


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        (
            OPENWEBUI,
            7,
            "components.chat.settings.api_kye_env",
            "unknown setting for kind openwebui",
        ),
        (
            OPENWEBUI,
            10,
            "components.chat.strategies.model_failover.params.fallback_modle",
            "unknown parameter",
        ),
        (
            GOOD.replace('{command: ["true"]}', '{command: ["true"], timout_seconds: 5}'),
            11,
            "components.app.strategies.restart_app.params.timout_seconds",
            "unknown parameter",
        ),
    ],
    ids=["openwebui setting", "openwebui param", "command param"],
)
def test_a_misspelt_handler_key_is_an_error_not_ignored(
    text: str, line: int, key: str, message: str
) -> None:
    """A typo in a handler's settings or params would otherwise leave the default in force
    without a word (openwebui and command params used to ignore unknown keys)."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.yml")
    assert f"cfg.yml:{line}: {key}: {message}" in caught.value.lines()


@pytest.mark.parametrize("key", ["alertmanager_url", "webhook_url"])
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://am.example/x", "must be an http:// or https:// URL with a host"),
        ("file:///etc/passwd", "must be an http:// or https:// URL with a host"),
        ("am.example:9093", "must be an http:// or https:// URL with a host"),
        ("'http://[bad'", "must be an http:// or https:// URL"),
        ("'http://am.example/a b'", "must be a URL without spaces or control characters"),
    ],
)
def test_an_alert_target_that_is_not_an_http_url_is_a_config_error(
    key: str, url: str, message: str
) -> None:
    """Such a target passed ``config check`` and then failed every alert at send time."""
    with pytest.raises(ConfigError) as caught:
        parse_config(GOOD + f"alerting:\n  {key}: {url}\n", "cfg.yml")
    assert caught.value.lines() == [f"cfg.yml:13: alerting.{key}: {message}"]


def test_alert_targets_over_http_and_https_load() -> None:
    text = GOOD + "alerting:\n  alertmanager_url: http://127.0.0.1:9093\n"
    text += "  webhook_url: https://hooks.example/recovery\n"
    alerting = parse_config(text, "cfg.yml").alerting
    assert (alerting.alertmanager_url, alerting.webhook_url) == (
        "http://127.0.0.1:9093",
        "https://hooks.example/recovery",
    )


def test_error_line_number_points_at_the_key() -> None:
    text = GOOD.replace("chain: [restart_app]", "chain: [reboot]")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.yml")
    expected_line = text.splitlines().index("    chain: [reboot]") + 1
    assert caught.value.lines()[0].startswith(f"cfg.yml:{expected_line}: components.app.chain[0]:")


def test_all_problems_reported_at_once() -> None:
    text = GOOD.replace("cooldown_seconds: 300", "cooldown_seconds: -1\n  max_attempts_per_hour: 0")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.yml")
    assert len(caught.value.lines()) == 2


def test_shipped_config_is_valid() -> None:
    config = load_config(Path(__file__).parents[2] / "recovery_config.yml")
    assert set(config.components) == {"system", "redis", "chromadb", "openwebui"}
    assert config.defaults.max_attempts_per_hour == 3 and config.defaults.cooldown_seconds == 300
    assert set(config.degraded_modes) == {
        "chromadb_unavailable",
        "openwebui_unavailable",
        "redis_unavailable",
    }
    assert config.components["redis"].chain == ["reconnect", "flush_corrupted", "restart_container"]
    assert config.components["chromadb"].chain == [
        "query_retry",
        "collection_reload",
        "snapshot_rollback",
        "index_rebuild",
    ]
    # model_failover is shipped configured but out of the chains: it has no fallback model
    # until one is named, and the drill would fail it
    assert config.components["openwebui"].chain == ["token_refresh", "graceful_degradation"]
    assert "model_failover" not in config.chain_for("openwebui", "upstream_unavailable")
    assert "model_failover" in config.components["openwebui"].strategies
    assert config.components["system"].chain == [
        "disk_cleanup",
        "memory_gc",
        "file_handle_cleanup",
        "process_restart",
    ]


def test_cli_reports_broken_config_with_exit_2_and_no_traceback(ws: Workspace) -> None:
    ws.write_config(GOOD.replace("kind: command", "kind: postgres"))
    result = ws.run("status", "--no-probe")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert f"{ws.config}:6: components.app.kind: unknown kind 'postgres'" in result.stderr


def test_missing_config_file_is_exit_2(ws: Workspace) -> None:
    result = ws.run("status")
    assert result.returncode == 2 and "cannot read config" in result.stderr


# Hypothesis: mutate one scalar of a valid config into a wrong type or value.
LEAVES = [
    ("defaults", "cooldown_seconds"),
    ("defaults", "max_attempts_per_hour"),
    ("defaults", "step_timeout_seconds"),
    ("defaults", "approval_ttl_seconds"),
    ("audit", "retention_days"),
]
BAD_VALUES = st.one_of(
    st.integers(max_value=-1),
    st.text(min_size=1, alphabet="abcxyz"),
    st.lists(st.integers(), max_size=2),
    st.just(None),
    st.dictionaries(st.just("k"), st.integers(), max_size=1),
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(leaf=st.sampled_from(LEAVES), value=BAD_VALUES)
def test_generated_broken_values_exit_2_naming_the_key(
    leaf: tuple[str, str], value: object
) -> None:
    data = yaml.safe_load(GOOD)
    data.setdefault(leaf[0], {})[leaf[1]] = value
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_dump(data), "gen.yml")
    assert any(f"{leaf[0]}.{leaf[1]}" in line for line in caught.value.lines())


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(extra=st.text(min_size=1, max_size=12, alphabet="abcdefghijklmnopqrstuvwxyz_"))
def test_generated_unknown_component_keys_are_rejected(extra: str) -> None:
    data = yaml.safe_load(GOOD)
    assume(extra not in ComponentConfig.model_fields)  # e.g. flap_max: a key it knows
    data["components"]["app"][extra] = 1
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_dump(data), "gen.yml")
    assert any(f"components.app.{extra}" in line for line in caught.value.lines())


def test_broken_configs_via_cli_never_show_tracebacks(tmp_path: Path) -> None:
    import sys

    for index, (_, text, _) in enumerate(BROKEN):
        path = tmp_path / f"c{index}.yml"
        path.write_text(text)
    argv = [sys.executable, "-c", CHECK_ALL, str(tmp_path)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


CHECK_ALL = """
import subprocess, sys, pathlib
bad = []
for path in sorted(pathlib.Path(sys.argv[1]).glob('c*.yml')):
    r = subprocess.run([sys.executable, '-m', 'recovery_cli', '--config', str(path), '--state-dir',
                        str(path.with_suffix('.state')), 'status', '--no-probe'], capture_output=True, text=True)
    if r.returncode != 2 or 'Traceback' in r.stderr or not r.stderr.strip():
        bad.append((path.name, r.returncode, r.stderr[-300:]))
print(bad)
sys.exit(1 if bad else 0)
"""
