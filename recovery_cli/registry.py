"""Every handler kind, one line each, imported on demand; plus kinds from installed plugins.

A line names the kind's ``KindSpec`` (``handlers/<kind>/kind.py``), which says where its
handler, settings check and strategies are and which strategies it has, so a config is
validated without importing a handler or its client library."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from recovery_cli.handlers.base import BaseHandler, ComponentContext, KindSpec, SettingsError

KINDS: dict[str, str] = {
    "command": "recovery_cli.handlers.command:KIND",
    "system": "recovery_cli.handlers.system.kind:KIND",
    "redis": "recovery_cli.handlers.redis.kind:KIND",
    "chromadb": "recovery_cli.handlers.chromadb.kind:KIND",
    "openwebui": "recovery_cli.handlers.openwebui.kind:KIND",
}

ENTRY_POINT_GROUP = "recovery_cli.kinds"  # third-party kinds: name = "module:KIND_SPEC"

Validator = Callable[[Mapping[str, Any], Mapping[str, Mapping[str, Any]]], list[SettingsError]]


class HandlerUnavailable(Exception):
    """The kind is known but its handler module is not installed in this build."""


def kind_spec(kind: str) -> KindSpec | None:
    """The kind's spec: built in, or from an installed plugin package (entry point group
    ``recovery_cli.kinds``, read only when a config names a kind not built in)."""
    if kind in KINDS:
        return _built_in(kind)
    return plugin_kinds().get(kind)


def known_kinds() -> list[str]:
    return sorted({*KINDS, *plugin_kinds()})


@cache
def _built_in(kind: str) -> KindSpec:
    spec = _load(KINDS[kind])
    assert isinstance(spec, KindSpec), KINDS[kind]
    return spec


@cache
def plugin_kinds() -> dict[str, KindSpec]:
    from importlib.metadata import entry_points

    found: dict[str, KindSpec] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in KINDS:
            continue  # a plugin never replaces a built-in kind
        try:
            spec = point.load()
        except Exception:  # a broken plugin is one unknown kind, never a broken CLI
            continue
        if isinstance(spec, KindSpec):
            found[point.name] = spec
    return found


def _spec(kind: str) -> KindSpec:
    spec = kind_spec(kind)
    if spec is None:
        raise HandlerUnavailable(f"no handler for kind {kind!r}")
    return spec


def _load(target: str) -> Any:
    """The object ``module:attribute`` names (the attribute may be dotted)."""
    module_name, _, attributes = target.partition(":")
    found: Any = importlib.import_module(module_name)
    for attribute in attributes.split("."):
        found = getattr(found, attribute)
    return found


def _load_for(kind: str, target: str) -> Any:
    try:
        return _load(target)
    except ModuleNotFoundError as exc:
        if exc.name == target.partition(":")[0]:
            raise HandlerUnavailable(f"the {kind} handler is not available yet") from exc
        raise HandlerUnavailable(f"the {kind} handler needs {exc.name!r}: {exc}") from exc


def handler_class(kind: str) -> type[BaseHandler]:
    cls: type[BaseHandler] = _load_for(kind, _spec(kind).handler)
    return cls


def config_validator(kind: str) -> Validator:
    """The settings check of ``kind``; raises ``HandlerUnavailable`` like ``handler_class``."""
    return _check(kind, _spec(kind).settings)


def config_warnings(kind: str) -> Validator:
    """The kind's check for a config that loads but cannot work as meant."""
    return _check(kind, _spec(kind).warnings)


def _check(kind: str, target: str | None) -> Validator:
    if target is None:
        return _accept_anything
    check: Validator = _load_for(kind, target)
    return check


def _accept_anything(
    settings: Mapping[str, Any], params: Mapping[str, Mapping[str, Any]]
) -> list[SettingsError]:
    return []


def is_available(kind: str) -> bool:
    """Whether the kind's handler module is installed (found, not imported: cheap)."""
    import importlib.util

    spec = kind_spec(kind)
    if spec is None:
        return False
    module_name = spec.handler.partition(":")[0]
    try:
        return importlib.util.find_spec(module_name) is not None
    except ModuleNotFoundError:
        return False


def build_handler(kind: str, context: ComponentContext) -> BaseHandler:
    return handler_class(kind)(context)
