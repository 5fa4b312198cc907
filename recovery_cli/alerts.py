"""Alerts with a lifecycle: Alertmanager API v2 or a plain JSON webhook.

A component holds at most one alert, for the state it is in when that state needs a person;
it is fired on entry, re-sent every ``alerting.repeat_seconds`` by whichever run comes next
(``endsAt`` a little beyond the next expected re-send, so Alertmanager never lets it lapse),
and resolved (``endsAt`` now) when the state changes or the component is healthy. The labels
say what it is (``alertname``, ``component``, ``host``, ``severity``, ``state``, ``reason``).

Alerts are queued while a lock is held and sent once it is released. Each call has a total
deadline (connect, send and every read together); a failed alert is reported as text and never
fails or blocks a recovery."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from recovery_cli.config import Alerting
from recovery_cli.handlers.util import format_ts
from recovery_cli.lifecycle import LifeState

ALERT_NAMES = {
    LifeState.FAILING: "RecoveryComponentFailing",
    LifeState.BLOCKED: "RecoveryBlockedWhileDown",
    LifeState.AWAITING_APPROVAL: "RecoveryApprovalPending",
    LifeState.FAILED: "RecoveryFailed",
    LifeState.ESCALATED: "RecoveryEscalated",
}
BLAST_RADIUS_ALERT = "RecoveryBlastRadius"
# fired once when a recovery ended healthy but discarded data; it lapses after a day
DATA_LOSS_ALERT = "RecoveryDataLoss"
DATA_LOSS_ALERT_SECONDS = 86400.0
# a working component serving from its fallback (a probe's ``on_fallback`` mark)
ON_FALLBACK = "on_fallback"
ON_FALLBACK_ALERT = "RecoveryOnFallback"


@dataclass(frozen=True)
class PendingAlert:
    labels: Mapping[str, str]  # alertname included
    summary: str
    starts_at: float
    ends_at: float
    resolved: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "labels": dict(self.labels),
            "summary": self.summary,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "resolved": self.resolved,
        }

    @classmethod
    def from_json(cls, data: object) -> PendingAlert | None:
        if not isinstance(data, dict) or not isinstance(data.get("labels"), dict):
            return None
        try:
            return cls(
                {str(k): str(v) for k, v in data["labels"].items()},
                str(data.get("summary", "")),
                float(data["starts_at"]),
                float(data["ends_at"]),
                bool(data.get("resolved")),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Sent:
    warnings: list[str]
    failed: list[PendingAlert]  # what no target took: resolutions are retried next run


@dataclass
class Outbox:
    """Alerts raised during a run, sent when no lock is held."""

    pending: list[PendingAlert] = field(default_factory=list)

    def add(self, alerts: Sequence[PendingAlert]) -> None:
        self.pending.extend(alerts)

    def flush(self, alerting: Alerting) -> Sent:
        pending, self.pending = self.pending, []
        if not pending:
            return Sent([], [])
        return send(alerting, pending)


def plan(
    held: Mapping[str, Any] | None,
    labels: Mapping[str, str] | None,
    summary: str,
    alerting: Alerting,
    now: float,
) -> tuple[dict[str, Any] | None, list[PendingAlert]]:
    """The alert to hold after this run and what to send: resolve ``held`` when it is not
    the one wanted (``labels``), fire the wanted one, or re-send it when it is due."""
    messages: list[PendingAlert] = []
    current = dict(held) if held else None
    if current is not None and (labels is None or current["labels"] != dict(labels)):
        messages.append(_resolution(current, now))
        current = None
    if labels is None:
        return None, messages
    if current is None:
        current = {"labels": dict(labels), "starts_at": now, "sent_at": None}
    sent_at = current.get("sent_at")
    if sent_at is None or not 0 <= now - float(sent_at) < alerting.repeat_seconds:
        ends = now + alerting.repeat_seconds + 2 * alerting.run_interval_seconds
        messages.append(PendingAlert(dict(labels), summary, float(current["starts_at"]), ends))
        current["sent_at"] = now
    current["summary"] = summary
    return current, messages


def _resolution(held: Mapping[str, Any], now: float) -> PendingAlert:
    return PendingAlert(
        dict(held["labels"]), str(held.get("summary", "")), float(held["starts_at"]), now, True
    )


def send(alerting: Alerting, alerts: Sequence[PendingAlert]) -> Sent:
    """Send to every configured target: one warning line per failure, and the alerts that
    some target did not take."""
    targets = _targets(alerting, alerts)
    if not targets:
        return Sent([], [])
    import asyncio

    posts = [(url, body) for url, body, _ in targets]
    errors = asyncio.run(_post_all(posts, alerting.timeout_seconds))
    failed: list[PendingAlert] = []
    for (_, _, carried), error in zip(targets, errors, strict=True):
        if error:
            failed += [a for a in carried if a not in failed]
    return Sent([e for e in errors if e], failed)


def _targets(
    alerting: Alerting, alerts: Sequence[PendingAlert]
) -> list[tuple[str, object, list[PendingAlert]]]:
    """(url, body, the alerts the body carries) for every configured target."""
    targets: list[tuple[str, object, list[PendingAlert]]] = []
    if alerting.alertmanager_url:
        url = alerting.alertmanager_url.rstrip("/") + "/api/v2/alerts"
        targets.append((url, [_alertmanager_body(a) for a in alerts], list(alerts)))
    if alerting.webhook_url:
        targets += [(alerting.webhook_url, _webhook_body(a), [a]) for a in alerts]
    return targets


def _alertmanager_body(alert: PendingAlert) -> dict[str, Any]:
    return {
        "labels": dict(alert.labels),
        "annotations": {"summary": alert.summary},
        "startsAt": format_ts(alert.starts_at),
        "endsAt": format_ts(alert.ends_at),
    }


def _webhook_body(alert: PendingAlert) -> dict[str, Any]:
    return {
        "status": "resolved" if alert.resolved else "firing",
        "alert": alert.labels.get("alertname"),
        "labels": dict(alert.labels),
        "summary": alert.summary,
        "startsAt": format_ts(alert.starts_at),
        "endsAt": format_ts(alert.ends_at),
    }


async def _post_all(targets: Sequence[tuple[str, object]], deadline: float) -> list[str]:
    """One entry per target, in order: the failure, or an empty string."""
    import asyncio

    import httpx

    async with httpx.AsyncClient(timeout=deadline) as client:
        return list(await asyncio.gather(*(_post(client, u, b, deadline) for u, b in targets)))


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
