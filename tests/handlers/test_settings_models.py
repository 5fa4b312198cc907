"""Handler settings and params as pydantic models: every problem keyed as the config shows
it, in the kind's own words (never pydantic's), all at once; the models load no client."""

from __future__ import annotations

import subprocess
import sys

import pytest

from recovery_cli.handlers import command_settings
from recovery_cli.handlers.base import SettingsError
from recovery_cli.handlers.chromadb import settings as chromadb
from recovery_cli.handlers.openwebui import settings as openwebui
from recovery_cli.handlers.redis import settings as redis
from recovery_cli.handlers.settings_models import parse
from recovery_cli.handlers.system import settings as system

REDIS = {"url": "redis://127.0.0.1:6379/0"}


def pairs(errors: list[SettingsError]) -> list[tuple[str, str]]:
    return sorted((e.key, e.message) for e in errors)


@pytest.mark.parametrize("value", [True, False, "5", None])
def test_a_non_number_where_a_number_is_expected_is_refused_at_its_key(value: object) -> None:
    errors = redis.validate(
        {**REDIS, "connect_timeout_seconds": value}, {"reconnect": {"max_wait_seconds": value}}
    )
    assert pairs(errors) == [
        ("settings.connect_timeout_seconds", "must be a number above 0 and at most 3600"),
        ("strategies.reconnect.params.max_wait_seconds", "must be a number from 0 to 3600"),
    ]


def test_true_is_no_whole_number_either() -> None:
    errors = openwebui.validate(
        {"url": "http://127.0.0.1:8080"}, {"token_refresh": {"max_signins_per_window": True}}
    )
    assert pairs(errors) == [
        (
            "strategies.token_refresh.params.max_signins_per_window",
            "must be a whole number from 1 to 15",
        )
    ]


def test_unknown_keys_are_reported_in_the_words_of_the_model_they_are_in() -> None:
    errors = system.validate(
        {
            "disk": {"bogus": 1},
            "processes": [{"name": "a", "pidfile": "/run/a.pid", "colour": "red"}],
        },
        {"memory_gc": {"nope": 1}},
    )
    known_process_keys = ", ".join(system.ProcessSpec.model_fields)
    assert pairs(errors) == [
        ("settings.disk.bogus", "unknown key (known: paths, max_used_percent, min_free_bytes)"),
        ("settings.processes.0.colour", f"unknown key (known: {known_process_keys})"),
        (
            "strategies.memory_gc.params.nope",
            "unknown key (known: drop_page_cache, settle_seconds)",
        ),
    ]
    assert pairs(redis.validate({**REDIS, "bogus": 1}, {"restart_container": {"x": 1}})) == [
        ("settings.bogus", "unknown setting for kind redis"),
        ("strategies.restart_container.params.x", "unknown parameter"),
    ]


def test_settings_and_params_problems_are_all_reported_at_once() -> None:
    errors = chromadb.validate(
        {"collections": "docs", "probe_k": True, "colour": 1},
        {"snapshot": {"keep": 0, "x": 1}, "query_retry": {"attempts": 21}},
    )
    assert [key for key, _ in pairs(errors)] == [
        "settings",  # a check across fields, beside the field errors
        "settings.collections",
        "settings.colour",
        "settings.probe_k",
        "strategies.query_retry.params.attempts",
        "strategies.snapshot.params.keep",
        "strategies.snapshot.params.x",
    ]


def test_a_check_across_fields_shows_beside_a_broken_field_of_a_list_item() -> None:
    errors = system.validate(
        {"processes": [{"name": "a", "pidfile": "/a.pid"}, {"name": "a", "grace_seconds": -1}]},
        {},
    )
    assert pairs(errors) == [
        ("settings.processes", "process names must be unique"),
        ("settings.processes.1", "needs 'pidfile', 'process_name' or 'cmdline_pattern'"),
        ("settings.processes.1.grace_seconds", "must be a number from 0 to 3600"),
    ]


def test_a_missing_required_key_is_worded_by_its_own_rule() -> None:
    errors = command_settings.validate({"x_env": "X"}, {"fix": {"other": 1}})
    assert pairs(errors) == [
        ("settings.probe", "must be a non-empty argv list of strings"),
        ("strategies.fix.params.command", "must be a non-empty argv list"),
        ("strategies.fix.params.other", "unknown parameter"),
    ]


def test_parse_gives_the_model_or_every_problem() -> None:
    params = parse(redis.FlushParams, {"patterns": ["cache:*"], "type": "hash"}, redis.FLUSH_KEY)
    assert isinstance(params, redis.FlushParams)
    assert (params.patterns, params.key_type, params.mode) == (("cache:*",), "hash", "expire")
    problems = parse(redis.FlushParams, {"patterns": ["*"], "mode": "wipe"}, redis.FLUSH_KEY)
    assert isinstance(problems, list)
    assert [e.key for e in problems] == [f"{redis.FLUSH_KEY}.patterns", f"{redis.FLUSH_KEY}.mode"]


def test_null_means_the_default_where_the_kind_always_allowed_it() -> None:
    settings = chromadb.ChromaSettings.model_validate(
        {"url": "http://127.0.0.1:8000/", "probe_k": None, "heartbeat_timeout_seconds": None}
    )
    assert (settings.url, settings.probe_k, settings.heartbeat_timeout) == (
        "http://127.0.0.1:8000",
        10,
        2.0,
    )
    assert redis.validate({**REDIS, "socket_timeout_seconds": None}, {}) != []


SETTINGS_MODULES = [
    "recovery_cli.handlers.command_settings",
    "recovery_cli.handlers.redis.settings",
    "recovery_cli.handlers.chromadb.settings",
    "recovery_cli.handlers.openwebui.settings",
    "recovery_cli.handlers.system.settings",
]
LOADS = """
import importlib, sys
importlib.import_module(sys.argv[1])
heavy = ("redis", "chromadb", "httpx", "docker", "psutil")
print(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m.endswith(".handler")
             or m == "recovery_cli.handlers.command"))
"""


@pytest.mark.parametrize("module", SETTINGS_MODULES)
def test_a_settings_module_loads_no_client_library_nor_its_handler(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOADS, module], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
