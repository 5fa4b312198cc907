"""What every openwebui strategy module shares: an ``Api`` bound to the step's deadline,
an admin session, and a ``Finding`` as a failed ``StrategyResult``."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from recovery_cli.handlers.base import StrategyContext, StrategyResult
from recovery_cli.handlers.openwebui.api import Api
from recovery_cli.handlers.openwebui.checks import Finding, Owner, Session

P = TypeVar("P")  # a strategy's params model


def failed(finding: Finding, **data: Any) -> StrategyResult:
    return StrategyResult.failure(finding.failure_type, finding.detail, **data)


def connected(
    body: Callable[[Owner, StrategyContext, P, Api], StrategyResult],
) -> Callable[[Owner, StrategyContext, P], StrategyResult]:
    """A strategy that talks to the server: given an ``Api`` whose every call ends by the
    step's deadline."""

    @functools.wraps(body)
    def run(handler: Owner, ctx: StrategyContext, params: P) -> StrategyResult:
        with handler.connect(time.monotonic() + ctx.remaining()) as api:
            return body(handler, ctx, params, api)

    return run


def open_session(handler: Owner, api: Api) -> Session | StrategyResult:
    session = handler.session(api)
    return failed(session) if isinstance(session, Finding) else session
