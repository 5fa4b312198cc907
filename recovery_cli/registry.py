"""Every handler kind, in one greppable table, imported on demand.

The strategy names of each kind live here (not only in the handler) so that the config can
be validated without importing a handler or its client library.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from recovery_cli.handlers.base import BaseHandler, ComponentContext, SettingsError


@dataclass(frozen=True)
class KindSpec:
    target: str  # "module:Class"
    # None: the strategy names are whatever the component's config declares (kind: command).
    strategies: tuple[str, ...] | None
    description: str
    # "module:function" checking settings and params at config load; a light module, so that
    # loading the config does not import the whole handler (``None``: the class's own check).
    validator: str | None = None


KINDS: dict[str, KindSpec] = {
    "command": KindSpec(
        "recovery_cli.handlers.command:CommandHandler",
        None,
        "any service: probe and strategies are argv commands (Nagios plugin convention)",
    ),
    "system": KindSpec(
        "recovery_cli.handlers.system.handler:SystemHandler",
        ("disk_cleanup", "memory_gc", "file_handle_cleanup", "process_restart"),
        "the host: disk, memory, file handles, processes",
        "recovery_cli.handlers.system.settings:validate",
    ),
    "redis": KindSpec(
        "recovery_cli.handlers.redis.handler:RedisHandler",
        ("reconnect", "flush_corrupted", "restore_flushed", "restart_container"),
        "a Redis server",
    ),
    "chromadb": KindSpec(
        "recovery_cli.handlers.chromadb.handler:ChromaHandler",
        ("query_retry", "collection_reload", "snapshot", "snapshot_rollback", "index_rebuild"),
        "a ChromaDB server or persist directory",
        "recovery_cli.handlers.chromadb.settings:validate",
    ),
    "openwebui": KindSpec(
        "recovery_cli.handlers.openwebui.handler:OpenWebUIHandler",
        ("token_refresh", "model_failover", "graceful_degradation", "restore_config"),
        "an OpenWebUI server",
    ),
}


ENTRY_POINT_GROUP = "recovery_cli.kinds"  # third-party kinds: name = "module:KIND_SPEC"
_plugins: dict[str, KindSpec] | None = None


class HandlerUnavailable(Exception):
    """The kind is known but its handler module is not installed in this build."""


def kind_spec(kind: str) -> KindSpec | None:
    """The kind's spec: built in, or from an installed plugin package (entry point group
    ``recovery_cli.kinds``, read only when a config names a kind not built in)."""
    if kind in KINDS:
        return KINDS[kind]
    return plugin_kinds().get(kind)


def known_kinds() -> list[str]:
    return sorted({*KINDS, *plugin_kinds()})


def plugin_kinds() -> dict[str, KindSpec]:
    global _plugins
    if _plugins is None:
        _plugins = _load_plugins()
    return _plugins


def _load_plugins() -> dict[str, KindSpec]:
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


def handler_class(kind: str) -> type[BaseHandler]:
    spec = _spec(kind)
    module_name, _, class_name = spec.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise HandlerUnavailable(f"the {kind} handler is not available yet") from exc
        raise HandlerUnavailable(f"the {kind} handler needs {exc.name!r}: {exc}") from exc
    cls: type[BaseHandler] = getattr(module, class_name)
    return cls


Validator = Callable[[Mapping[str, Any], Mapping[str, Mapping[str, Any]]], list[SettingsError]]


def config_validator(kind: str) -> Validator:
    """The settings check of ``kind``; raises ``HandlerUnavailable`` like ``handler_class``."""
    spec = _spec(kind)
    if spec.validator is None:
        return handler_class(kind).validate_config
    module_name, _, function_name = spec.validator.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise HandlerUnavailable(f"the {kind} handler is not available yet") from exc
    validator: Validator = getattr(module, function_name)
    return validator


def is_available(kind: str) -> bool:
    """Whether the kind's handler module is installed (found, not imported: cheap)."""
    import importlib.util

    spec = kind_spec(kind)
    if spec is None:
        return False
    module_name = spec.target.partition(":")[0]
    try:
        return importlib.util.find_spec(module_name) is not None
    except ModuleNotFoundError:
        return False


def build_handler(kind: str, context: ComponentContext) -> BaseHandler:
    return handler_class(kind)(context)
