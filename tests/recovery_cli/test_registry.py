"""The registry: one line per kind; each kind's spec agrees with its handler and strategies."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from recovery_cli.handlers.base import ComponentContext, KindSpec
from recovery_cli.registry import (
    KINDS,
    build_handler,
    config_validator,
    is_available,
    kind_spec,
)

AVAILABLE = [kind for kind in KINDS if is_available(kind)]
WITH_STRATEGIES = [k for k in AVAILABLE if (spec := kind_spec(k)) and spec.strategies is not None]


def spec_of(kind: str) -> KindSpec:
    spec = kind_spec(kind)
    assert spec is not None
    return spec


@pytest.mark.parametrize("kind", WITH_STRATEGIES)
def test_every_declared_strategy_is_a_function_of_the_strategy_module(kind: str) -> None:
    spec = spec_of(kind)
    module = importlib.import_module(spec.strategy_module)
    public = {
        name
        for name, value in vars(module).items()
        if inspect.isfunction(value)
        and value.__module__ == module.__name__
        and not name.startswith("_")
    }
    declared = set(spec.strategies or ())
    assert declared <= public, f"declared but not defined: {declared - public}"
    for name in declared:
        assert list(inspect.signature(getattr(module, name)).parameters)[:2] == ["handler", "ctx"]


# the least each kind accepts (its settings are validated when the handler is built)
MINIMAL_SETTINGS = {
    "system": {},
    "redis": {"url": "redis://127.0.0.1:1/0"},
    "chromadb": {"url": "http://127.0.0.1:1", "collections": ["docs"]},
    "openwebui": {"url": "http://127.0.0.1:1"},
}


@pytest.mark.parametrize("kind", WITH_STRATEGIES)
def test_a_handler_offers_exactly_the_declared_strategies(kind: str, tmp_path: Path) -> None:
    assert config_validator(kind)(MINIMAL_SETTINGS[kind], {}) == []
    context = ComponentContext(
        name=kind,
        settings=MINIMAL_SETTINGS[kind],
        strategy_params={},
        state_dir=tmp_path,
        environ={},
    )
    handler = build_handler(kind, context)
    assert set(handler.strategies()) == set(spec_of(kind).strategies or ())
    assert type(handler).kind == kind and type(handler).spec is spec_of(kind)


def test_the_command_kind_takes_its_strategies_from_the_config(tmp_path: Path) -> None:
    params = {"restart": {"command": ["true"]}, "flush": {"command": ["true"]}}
    context = ComponentContext(
        name="svc",
        settings={"probe": ["true"]},
        strategy_params=params,
        state_dir=tmp_path,
        environ={},
    )
    assert set(build_handler("command", context).strategies()) == {"restart", "flush"}


@pytest.mark.parametrize("kind", AVAILABLE)
def test_every_kind_reports_broken_settings_at_their_keys(kind: str) -> None:
    broken = {"no_such_setting": 1, "url": 12}
    params = {"no_such_strategy_param": {"x": 1}}
    keys = [e.key for e in config_validator(kind)(broken, params)]
    assert any(key.startswith("settings.") for key in keys), keys


def test_a_kind_needs_no_component_in_the_shipped_config() -> None:
    """The registry is its own source of truth: a kind is validated, listed and documented
    whether or not the shipped config uses it."""
    assert set(KINDS) == {"command", "system", "redis", "chromadb", "openwebui"}
    assert all(isinstance(spec_of(kind), KindSpec) for kind in KINDS)
