"""The registry: one table of kinds, strategies and config checks, consistent with the handlers."""

from __future__ import annotations

from pathlib import Path

import pytest

from recovery_cli.config import load_config
from recovery_cli.handlers.base import ComponentContext
from recovery_cli.registry import (
    KINDS,
    build_handler,
    config_validator,
    handler_class,
    is_available,
)

SHIPPED = load_config(Path(__file__).parents[2] / "recovery_config.yml")
AVAILABLE = [kind for kind in KINDS if is_available(kind)]


@pytest.mark.parametrize("kind", [k for k in AVAILABLE if KINDS[k].strategies is not None])
def test_handler_implements_exactly_the_registered_strategies(kind: str, tmp_path: Path) -> None:
    name = next(n for n, c in SHIPPED.components.items() if c.kind == kind)
    component = SHIPPED.components[name]
    context = ComponentContext(
        name=name,
        settings=component.settings,
        strategy_params={s: spec.params for s, spec in component.strategies.items()},
        state_dir=tmp_path,
        environ={},
    )
    handler = build_handler(kind, context)
    assert set(handler.strategies()) == set(KINDS[kind].strategies or ())
    assert handler.kind == kind


@pytest.mark.parametrize("kind", AVAILABLE)
def test_light_config_check_agrees_with_the_handler(kind: str) -> None:
    cls = handler_class(kind)
    broken = {"no_such_setting": 1, "url": 12}
    params = {"no_such_strategy_param": {"x": 1}}
    light = [(e.key, e.message) for e in config_validator(kind)(broken, params)]
    full = [(e.key, e.message) for e in cls.validate_config(broken, params)]
    assert light == full
    assert light, "broken settings must be reported"
