"""``recovery check COMPONENT`` as a monitoring plugin (the Nagios / Monitoring Plugins
convention Icinga, Naemon, Zabbix and Sensu run): one line ``RECOVERY STATUS - text |
perfdata`` and exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.

Healthy is OK, degraded WARNING, down CRITICAL; a probe that timed out, crashed, or has no
handler, and any error before a probe (a config that does not load), is UNKNOWN: the plugin
could not tell. Nothing is written: no state, no audit record."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

from recovery_cli.handlers.base import ProbeResult
from recovery_cli.policy import Window

# the probe could not tell: it timed out (the core's limit or the client's), it crashed,
# or there is no handler
UNKNOWN_FAILURES = frozenset({"probe_timeout", "timeout", "probe_crashed", "handler_unavailable"})
LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class PluginStatus(enum.IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class PluginResult:
    status: PluginStatus
    text: str
    perfdata: tuple[str, ...] = ()

    def line(self) -> str:
        text = self.text.replace("|", "/").replace("\n", " ")  # a pipe starts perfdata
        head = f"RECOVERY {self.status.name} - {text}"
        return f"{head} | {' '.join(self.perfdata)}" if self.perfdata else head


def status_of(probe: ProbeResult) -> PluginStatus:
    if probe.failure_type in UNKNOWN_FAILURES:
        return PluginStatus.UNKNOWN
    return {
        "healthy": PluginStatus.OK,
        "degraded": PluginStatus.WARNING,
    }.get(str(probe.health), PluginStatus.CRITICAL)


def check_result(
    name: str,
    probe: ProbeResult,
    seconds: float,
    window: Window,
    lifecycle: str,
    disabled_until: str | None,
) -> PluginResult:
    status = status_of(probe)
    words = [f"{name} {probe.health}"]
    if probe.failure_type:
        words.append(f"({probe.failure_type})")
    if probe.detail:
        words.append(f"- {probe.detail}")
    notes = [f"state {lifecycle}"]
    if disabled_until:
        notes.append(f"recovery disabled until {disabled_until}")
    text = f"{' '.join(words)}; {', '.join(notes)}"
    return PluginResult(status, text, perfdata(seconds, window, probe.metrics))


def perfdata(seconds: float, window: Window, metrics: Mapping[str, float]) -> tuple[str, ...]:
    """``'label'=value[UOM];warn;crit;min;max``: the probe's time, attempts against the cap
    (critical at the cap), the cooldown left, and what the probe measured."""
    cooldown = max(0.0, (window.cooldown_until or window.now) - window.now)
    items = [
        f"probe_seconds={seconds:.6f}s;;;0",
        f"attempts_last_hour={window.used};{max(window.cap - 1, 0)};{window.cap};0;{window.cap}",
        f"cooldown_seconds={cooldown:.0f}s;;;0",
    ]
    for key, value in sorted(metrics.items()):
        if isinstance(value, int | float) and not isinstance(value, bool):
            items.append(f"{_label(key)}={value:g};;;")
    return tuple(items)


def _label(key: str) -> str:
    clean = LABEL_UNSAFE.sub("_", key)[:60] or "value"
    return clean
