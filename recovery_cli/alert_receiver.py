"""The Alertmanager webhook receiver's decisions: which firing alerts name a component to
recover, and which are duplicates of a recovery already running or just run (a burst of
notifications runs one recovery). The recovery itself goes through the gates like any run.

Not acted on: resolved alerts, alerts without the component label, components not in the
config, alerts for another host (a ``host`` label that is not this host's), and the tool's
own alerts (``RecoveryFailed`` and the rest), which would otherwise feed back into it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from recovery_cli import alerts
from recovery_cli.errors import UsageError

MAX_ALERTS = 1000  # Alertmanager truncates a notification's alerts well below this
OWN_ALERTS = frozenset(
    {
        *alerts.ALERT_NAMES.values(),
        alerts.BLAST_RADIUS_ALERT,
        alerts.DATA_LOSS_ALERT,
        alerts.ON_FALLBACK_ALERT,
    }
)


@dataclass(frozen=True)
class Verdict:
    component: str | None
    action: str  # recover | duplicate | ignored
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"component": self.component, "action": self.action, "why": self.why}


class AlertReceiver:
    def __init__(
        self,
        component_label: str,
        dedup_seconds: float,
        host: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.component_label = component_label
        self.dedup_seconds = dedup_seconds
        self.host = host
        self.clock = clock
        self.running: set[str] = set()
        self.started: dict[str, float] = {}
        self.lock = threading.Lock()

    def triage(self, payload: object, known: Collection[str]) -> list[Verdict]:
        """One verdict per alert; a ``recover`` verdict marks its component running until
        ``finished`` is called for it."""
        verdicts = []
        for labels, status in _alerts_of(payload):
            verdicts.append(self._verdict(labels, status, known))
        return verdicts

    def finished(self, component: str) -> None:
        with self.lock:
            self.running.discard(component)

    def _verdict(self, labels: Mapping[str, str], status: str, known: Collection[str]) -> Verdict:
        name = labels.get(self.component_label)
        ignored = self._ignored(labels, status, name, known)
        if ignored:
            return Verdict(name, "ignored", ignored)
        assert name is not None
        with self.lock:
            if name in self.running:
                return Verdict(name, "duplicate", "a recovery it triggered is running")
            started = self.started.get(name)
            if started is not None and self.clock() - started < self.dedup_seconds:
                why = f"recovered less than {self.dedup_seconds:g}s ago"
                return Verdict(name, "duplicate", why)
            self.running.add(name)
            self.started[name] = self.clock()
        return Verdict(name, "recover", f"alert {labels.get('alertname', '?')} firing")

    def _ignored(
        self, labels: Mapping[str, str], status: str, name: str | None, known: Collection[str]
    ) -> str | None:
        if status != "firing":
            return f"alert is {status}"
        if labels.get("alertname") in OWN_ALERTS:
            return "one of this tool's own alerts"
        if name is None:
            return f"no {self.component_label!r} label"
        if name not in known:
            return "not a configured component"
        if labels.get("host") not in (None, self.host):
            return f"for host {labels['host']!r}, not {self.host!r}"
        return None


def _alerts_of(payload: object) -> list[tuple[dict[str, str], str]]:
    """(labels, status) of each alert in an Alertmanager webhook notification (version 4)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise UsageError("not an Alertmanager notification: no 'alerts' list")
    items = payload["alerts"]
    if len(items) > MAX_ALERTS:
        raise UsageError(f"more than {MAX_ALERTS} alerts in one notification")
    found = []
    for index, alert in enumerate(items):
        labels = alert.get("labels") if isinstance(alert, dict) else None
        status = alert.get("status", payload.get("status")) if isinstance(alert, dict) else None
        if not isinstance(labels, dict) or not isinstance(status, str):
            raise UsageError(f"alerts.{index}: needs 'labels' (a mapping) and 'status'")
        if not all(isinstance(v, str) for v in labels.values()):
            raise UsageError(f"alerts.{index}: label values must be strings")
        found.append(({str(k): v for k, v in labels.items()}, status))
    return found
