"""The Alertmanager receiver's decisions: what it runs, what it skips as a duplicate."""

from __future__ import annotations

from typing import Any

import pytest

from recovery_cli.alert_receiver import AlertReceiver
from recovery_cli.errors import UsageError

KNOWN = {"redis", "chroma"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def alert(component: str | None = "redis", status: str = "firing", **labels: str) -> dict[str, Any]:
    named = {"alertname": "RedisDown", **labels}
    if component is not None:
        named["component"] = component
    return {"status": status, "labels": named}


def notify(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "alerts": list(alerts)}


def actions(receiver: AlertReceiver, payload: dict[str, Any]) -> list[str]:
    return [v.action for v in receiver.triage(payload, KNOWN)]


def test_a_burst_runs_one_recovery_per_component_until_the_window_ends() -> None:
    clock = Clock()
    receiver = AlertReceiver("component", 300, "web-1", clock)

    first = actions(receiver, notify(alert(), alert(), alert("chroma")))
    while_running = actions(receiver, notify(alert()))
    receiver.finished("redis")
    clock.now = 299
    in_window = actions(receiver, notify(alert()))
    clock.now = 300
    after = actions(receiver, notify(alert()))

    assert first == ["recover", "duplicate", "recover"]
    assert while_running == ["duplicate"]
    assert in_window == ["duplicate"]
    assert after == ["recover"]


def test_a_recovery_still_running_is_never_doubled_even_past_the_window() -> None:
    clock = Clock()
    receiver = AlertReceiver("component", 0, "web-1", clock)
    assert actions(receiver, notify(alert())) == ["recover"]
    clock.now = 10_000
    assert actions(receiver, notify(alert())) == ["duplicate"]


def test_what_is_not_acted_on_says_why() -> None:
    receiver = AlertReceiver("service", 300, "web-1", Clock())
    verdicts = receiver.triage(
        notify(
            alert(status="resolved", service="redis"),
            alert(service="redis", alertname="RecoveryFailed"),
            alert(service="redis", host="web-2"),
            alert(service="mysql"),
            alert(component="redis"),
            alert(service="redis", host="web-1"),
        ),
        KNOWN,
    )
    assert [(v.action, v.why) for v in verdicts] == [
        ("ignored", "alert is resolved"),
        ("ignored", "one of this tool's own alerts"),
        ("ignored", "for host 'web-2', not 'web-1'"),
        ("ignored", "not a configured component"),
        ("ignored", "no 'service' label"),
        ("recover", "alert RedisDown firing"),
    ]


@pytest.mark.parametrize(
    "payload",
    [[], {"alerts": "x"}, {"alerts": [{"labels": []}]}, {"alerts": [1]}, {"alerts": [{}] * 1001}],
)
def test_a_payload_that_is_not_a_notification_is_refused(payload: Any) -> None:
    with pytest.raises(UsageError):
        AlertReceiver("component", 300, "h", Clock()).triage(payload, KNOWN)
