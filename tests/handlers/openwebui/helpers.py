"""What the openwebui test modules share: a handler on a real server, and one strategy
run the way the orchestrator runs it (a ``StrategyContext`` with a deadline)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recovery_cli.handlers.base import (
    ComponentContext,
    ServiceControl,
    StrategyContext,
    StrategyResult,
)
from recovery_cli.handlers.openwebui.handler import OpenWebUIHandler

PRIMARY, FALLBACK = "stub-primary", "stub-fallback"
ENV_NAMES = {
    "api_key_env": "OWUI_API_KEY",
    "email_env": "OWUI_EMAIL",
    "password_env": "OWUI_PASSWORD",
}


def handler_for(
    url: str,
    state_dir: Path,
    environ: Mapping[str, str],
    params: Mapping[str, Mapping[str, Any]] | None = None,
    probe_timeout: float = 10.0,
    **settings: Any,
) -> OpenWebUIHandler:
    context = ComponentContext(
        name="openwebui",
        settings={"url": url, **ENV_NAMES, **settings},
        strategy_params=dict(params or {}),
        state_dir=state_dir,
        environ=dict(environ),
        probe_timeout=probe_timeout,
    )
    return OpenWebUIHandler(context)


def run(
    handler: OpenWebUIHandler,
    strategy: str,
    dry_run: bool = False,
    service: ServiceControl | None = None,
    timeout: float = 30.0,
    **params: Any,
) -> StrategyResult:
    """One step: the configured params, with ``params`` merged over them (as the core merges
    ``--override-conflicts`` into restore_config's)."""
    merged = {**handler.context.params_for(strategy), **params}
    ctx = StrategyContext(
        handler.context,
        merged,
        None,
        timeout,
        dry_run=dry_run,
        service=service,
        deadline=time.monotonic() + timeout,
    )
    return handler.strategies()[strategy](ctx)
