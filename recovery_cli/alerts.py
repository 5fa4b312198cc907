"""Best-effort alerts: Alertmanager API v2 or a plain JSON webhook.

Alerts are queued while a component is locked and sent once it is released. Each call has
a total deadline (connect, send and every read together), so a slow or trickling endpoint
costs at most ``timeout_seconds``; a failed alert is reported as text and never fails or
blocks a recovery."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from recovery_cli.audit import format_ts
from recovery_cli.config import Alerting


@dataclass(frozen=True)
class PendingAlert:
    name: str
    labels: Mapping[str, str]
    summary: str
    at: float


@dataclass
class Outbox:
    """Alerts raised during a run, sent when no lock is held."""

    pending: list[PendingAlert] = field(default_factory=list)

    def add(self, name: str, labels: Mapping[str, str], summary: str, at: float) -> None:
        self.pending.append(PendingAlert(name, dict(labels), summary, at))

    def flush(self, alerting: Alerting) -> list[str]:
        pending, self.pending = self.pending, []
        return [line for alert in pending for line in send_alert(alerting, alert)]


def send_alert(alerting: Alerting, alert: PendingAlert) -> list[str]:
    """Send to every configured target; returns one line per failure (empty: all sent)."""
    targets = _targets(alerting, alert)
    if not targets:
        return []
    import asyncio

    return asyncio.run(_post_all(targets, alerting.timeout_seconds))


def _targets(alerting: Alerting, alert: PendingAlert) -> list[tuple[str, object]]:
    targets: list[tuple[str, object]] = []
    if alerting.alertmanager_url:
        body = {
            "labels": {"alertname": alert.name, **alert.labels},
            "annotations": {"summary": alert.summary},
            "startsAt": format_ts(alert.at),
        }
        targets.append((alerting.alertmanager_url.rstrip("/") + "/api/v2/alerts", [body]))
    if alerting.webhook_url:
        hook = {
            "alert": alert.name,
            "labels": dict(alert.labels),
            "summary": alert.summary,
            "ts": format_ts(alert.at),
        }
        targets.append((alerting.webhook_url, hook))
    return targets


async def _post_all(targets: Sequence[tuple[str, object]], deadline: float) -> list[str]:
    import asyncio

    import httpx

    async with httpx.AsyncClient(timeout=deadline) as client:
        errors = await asyncio.gather(*(_post(client, u, b, deadline) for u, b in targets))
    return [error for error in errors if error]


async def _post(client: Any, url: str, body: object, deadline: float) -> str:
    import asyncio

    import httpx

    try:
        response = await asyncio.wait_for(client.post(url, json=body), timeout=deadline)
    except TimeoutError:
        return f"alert to {url} failed: no answer within {deadline:g}s"
    except httpx.HTTPError as exc:
        return f"alert to {url} failed: {type(exc).__name__}"
    if response.status_code >= 300:
        return f"alert to {url} answered HTTP {response.status_code}"
    return ""
