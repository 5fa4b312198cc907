"""Best-effort alerts: Alertmanager API v2 or a plain JSON webhook. Time-limited; a failed
alert is reported to the caller as text and never fails or blocks a recovery."""

from __future__ import annotations

from collections.abc import Mapping

from recovery_cli.audit import format_ts
from recovery_cli.config import Alerting


def send_alert(
    alerting: Alerting, name: str, labels: Mapping[str, str], summary: str, now: float
) -> list[str]:
    """Send to every configured target; returns one line per failure (empty: all sent)."""
    targets: list[tuple[str, object]] = []
    if alerting.alertmanager_url:
        url = alerting.alertmanager_url.rstrip("/") + "/api/v2/alerts"
        alert = {
            "labels": {"alertname": name, **labels},
            "annotations": {"summary": summary},
            "startsAt": format_ts(now),
        }
        targets.append((url, [alert]))
    if alerting.webhook_url:
        targets.append(
            (
                alerting.webhook_url,
                {"alert": name, "labels": dict(labels), "summary": summary, "ts": format_ts(now)},
            )
        )
    return [error for url, body in targets if (error := _post(url, body, alerting.timeout_seconds))]


def _post(url: str, body: object, timeout: float) -> str:
    import httpx

    try:
        response = httpx.post(url, json=body, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"alert to {url} failed: {type(exc).__name__}"
    if response.status_code >= 300:
        return f"alert to {url} answered HTTP {response.status_code}"
    return ""
