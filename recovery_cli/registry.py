"""Every handler kind, in one greppable table, imported on demand.

The strategy names of each kind live here (not only in the handler) so that the config can
be validated without importing a handler or its client library.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from recovery_cli.handlers.base import BaseHandler, ComponentContext


@dataclass(frozen=True)
class KindSpec:
    target: str  # "module:Class"
    # None: the strategy names are whatever the component's config declares (kind: command).
    strategies: tuple[str, ...] | None
    description: str


KINDS: dict[str, KindSpec] = {
    "command": KindSpec(
        "recovery_cli.handlers.command:CommandHandler",
        None,
        "any service: probe and strategies are argv commands (Nagios plugin convention)",
    ),
    "system": KindSpec(
        "recovery_cli.handlers.system:SystemHandler",
        ("disk_cleanup", "memory_gc", "file_handle_cleanup", "process_restart"),
        "the host: disk, memory, file handles, processes",
    ),
    "redis": KindSpec(
        "recovery_cli.handlers.redis:RedisHandler",
        ("reconnect", "flush_corrupted", "restore_flushed", "restart_container"),
        "a Redis server",
    ),
    "chromadb": KindSpec(
        "recovery_cli.handlers.chromadb:ChromaHandler",
        ("query_retry", "collection_reload", "snapshot", "snapshot_rollback", "index_rebuild"),
        "a ChromaDB server or persist directory",
    ),
    "openwebui": KindSpec(
        "recovery_cli.handlers.openwebui:OpenWebUIHandler",
        ("token_refresh", "model_failover", "graceful_degradation", "restore_config"),
        "an OpenWebUI server",
    ),
}


class HandlerUnavailable(Exception):
    """The kind is known but its handler module is not installed in this build."""


def handler_class(kind: str) -> type[BaseHandler]:
    spec = KINDS[kind]
    module_name, _, class_name = spec.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise HandlerUnavailable(f"the {kind} handler is not available yet") from exc
        raise HandlerUnavailable(f"the {kind} handler needs {exc.name!r}: {exc}") from exc
    cls: type[BaseHandler] = getattr(module, class_name)
    return cls


def is_available(kind: str) -> bool:
    try:
        handler_class(kind)
    except HandlerUnavailable:
        return False
    return True


def build_handler(kind: str, context: ComponentContext) -> BaseHandler:
    return handler_class(kind)(context)
