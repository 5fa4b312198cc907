"""``recovery watch``: the run ``recover`` makes, again and again, one component at a time on
its own probe interval (with jitter): the same gates, state store, audit trail and alerts, so
cron runs and people on the same state dir keep every guarantee. No lock is held between
runs; handlers (and their client connections) live across runs, probes never do.

A component whose processes are known (``exits.component_pids``: a service pidfile,
systemd's MainPID, a system component's process pidfiles) is watched through pidfds as well:
an exit starts a run at once; the interval stays for hangs.

Signals: SIGHUP reloads the config (a config that does not load is refused and the old one
kept); SIGTERM interrupts the running step, which is recorded, and ends the watch cleanly.
Under systemd (``Type=notify``) it sends ``READY=1`` after the first round, ``STATUS=``
after each run, ``WATCHDOG=1`` at half ``WATCHDOG_USEC`` and ``STOPPING=1``. With
``alerting.heartbeat_url`` it pings ``/start`` once and then the worst latest code of its
components, at most once per ``alerting.heartbeat_interval_seconds`` (``heartbeat.py``)."""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING

from recovery_cli.audit import Record
from recovery_cli.errors import ExitCode, RecoveryError, Terminated, worst
from recovery_cli.exits import ExitWatch, component_pids
from recovery_cli.invocation import Session
from recovery_cli.results import ComponentReport
from recovery_cli.run_context import RecoverRequest
from recovery_cli.sd_notify import Notifier

if TYPE_CHECKING:
    from recovery_cli.api_running import RunningApi
    from recovery_cli.heartbeat import Heartbeat, Pacer

JITTER = 0.1  # each interval is drawn from +-10% around its value
NAP_SECONDS = 0.2  # the longest sleep between looks at signals and the watchdog
TRIGGER = "watch"
LOG_FIELDS = ("component", "strategy", "outcome", "reason", "from_state", "to_state", "detail")


@dataclass
class Schedule:
    """When each component is run next (monotonic seconds)."""

    due: dict[str, float] = field(default_factory=dict)

    def next(self) -> tuple[str, float]:
        name = min(self.due, key=lambda n: self.due[n])
        return name, self.due[name]

    def after(self, name: str, interval: float, now: float) -> None:
        self.due[name] = now + interval * random.uniform(1 - JITTER, 1 + JITTER)

    def keep_only(self, names: Sequence[str], now: float) -> None:
        self.due = {n: self.due.get(n, now) for n in names}


class EventLog:
    """One line per audit record a run wrote, on stderr: ``key=value`` text, or JSON."""

    def __init__(
        self, emit: Callable[[str], None], json_lines: bool, source: str = "watch"
    ) -> None:
        self.emit = emit
        self.json_lines = json_lines
        self.source = source  # the event name of the process's own lines

    def record(self, record: Record) -> None:
        if self.json_lines:
            self.emit(json.dumps(record, sort_keys=True, default=str))
            return
        parts = [f"{k}={_quoted(record[k])}" for k in LOG_FIELDS if record.get(k) not in (None, "")]
        self.emit(f"{record.get('event')} " + " ".join(parts))

    def note(self, message: str, **fields: object) -> None:
        if self.json_lines:
            line = {"event": self.source, "detail": message, **fields}
            self.emit(json.dumps(line, default=str))
            return
        extra = "".join(f" {k}={_quoted(v)}" for k, v in fields.items())
        self.emit(f"{self.source} detail={_quoted(message)}{extra}")


def _quoted(value: object) -> str:
    text = str(value)
    plain = text.isprintable() and not any(c in text for c in ' "=')
    return text if plain else json.dumps(text)  # a newline in a value never starts a line


class Watcher:
    def __init__(
        self,
        session: Session,
        names: Sequence[str],
        interval: float | None,
        log: EventLog,
        notifier: Notifier,
        api: RunningApi | None = None,
    ) -> None:
        self.session = session
        self.api = api  # ``--listen``: served beside the loop, stopped with it
        self.names = tuple(names)
        self.interval = interval
        self.log = log
        self.notifier = notifier
        self.schedule = Schedule()
        self.reload_asked = False
        self.last_ping = 0.0
        self.exits = ExitWatch()
        self.heartbeat: Heartbeat | None = None
        self.pacer: Pacer | None = None

    # -- the loop ------------------------------------------------------------------------

    def run(self, cycles: int | None = None) -> int:
        previous = signal.signal(signal.SIGHUP, self._ask_reload)
        self.schedule.keep_only(self._watched(), time.monotonic())
        self._track_all()
        self.log.note("watching", components=",".join(self._watched()))
        self._heartbeat_start()
        done = 0
        try:
            while cycles is None or done < cycles:
                name, due = self.schedule.next()
                if not self._sleep_until(due):
                    continue  # woken to reload: the schedule may have changed
                self._run_one(name)
                done += 1
                if done == len(self.schedule.due):
                    self.notifier.send("READY=1", self._status())
        except Terminated:
            self.log.note("stopping on SIGTERM")
        finally:
            self.notifier.send("STOPPING=1")
            signal.signal(signal.SIGHUP, previous)
            self.exits.close()
            if self.api is not None:
                self.api.stop()
        return 0

    def _run_one(self, name: str) -> None:
        from recovery_cli.orchestrator import Orchestrator

        session = self.session
        components = session.components
        components.forget_probes()  # a fresh probe each run; handlers stay warm
        store = session.store()
        store.on_record = self.log.record
        runner = Orchestrator(session.config, store, session.env, components)
        code = ExitCode.INTERNAL
        try:
            reports = runner.recover(RecoverRequest(components=(name,), trigger=TRIGGER))
            code = worst([r.code for r in reports])
        except RecoveryError as exc:  # a lock that did not come, a full disk: next round
            self.log.note(f"{name}: {'; '.join(exc.lines())}")
            reports = []
            code = exc.exit_code
        finally:
            store.close()
            self.schedule.after(name, self._interval(name), time.monotonic())
            self._track(name)  # after a restart, the new process
        for warning in runner.warnings:
            self.log.note(f"warning: {warning}")
        self.notifier.send(self._status(reports))
        self._heartbeat_after(name, code)

    def _heartbeat_start(self) -> None:
        from recovery_cli.heartbeat import Heartbeat, Pacer

        alerting = self.session.config.alerting
        self.pacer = Pacer(alerting.heartbeat_interval_seconds)
        self.heartbeat = Heartbeat(None, "watch", self.log.note)
        self._heartbeat_target()
        self.heartbeat.start()

    def _heartbeat_target(self) -> None:
        """The heartbeat's target and pace from the config now loaded."""
        from recovery_cli.heartbeat import target_of

        if self.heartbeat is None or self.pacer is None:
            return
        alerting = self.session.config.alerting
        self.heartbeat.target = target_of(alerting, self.session.env.environ)
        self.pacer.interval = alerting.heartbeat_interval_seconds
        self.pacer.keep_only(self._watched())

    def _heartbeat_after(self, name: str, code: ExitCode) -> None:
        if self.pacer is not None:
            self.pacer.ran(name, code)
        if self.heartbeat is None or self.pacer is None or not self.heartbeat.enabled:
            return
        due = self.pacer.due(time.monotonic())
        if due is not None:
            self.heartbeat.finish(due)

    def _status(self, reports: Sequence[ComponentReport] = ()) -> str:
        watched = len(self.schedule.due)
        unhealthy = [r.component for r in reports if r.health != "healthy"]
        tail = f"; {', '.join(unhealthy)} unhealthy" if unhealthy else ""
        return f"STATUS=watching {watched} components{tail}"

    # -- waiting, signals and reload -----------------------------------------------------

    def _sleep_until(self, due: float) -> bool:
        """Sleep until ``due``, pinging the watchdog; False when woken to reload."""
        while True:
            self._ping_watchdog()
            if self.reload_asked:
                self._reload()
                return False
            left = due - time.monotonic()
            if left <= 0:
                return True
            ended = self.exits.wait(min(left, NAP_SECONDS, self._until_ping()))
            if ended:
                for name in ended:
                    self.log.note(f"{name}: its process exited", component=name)
                    self.schedule.due[name] = time.monotonic()
                return False

    def _ping_watchdog(self) -> None:
        period = self.notifier.watchdog_seconds
        now = time.monotonic()
        if period is not None and now - self.last_ping >= period:
            self.notifier.send("WATCHDOG=1")
            self.last_ping = now

    def _until_ping(self) -> float:
        period = self.notifier.watchdog_seconds
        if period is None:
            return NAP_SECONDS
        return max(0.01, period - (time.monotonic() - self.last_ping))

    def _ask_reload(self, signum: int, frame: FrameType | None) -> None:
        self.reload_asked = True

    def _reload(self) -> None:
        self.reload_asked = False
        try:
            self.session.reload()
        except RecoveryError as exc:
            why = "; ".join(exc.lines())
            self.log.note(f"config reload refused, the old one is kept: {why}")
            return
        self.schedule.keep_only(self._watched(), time.monotonic())
        self._track_all()
        self._heartbeat_target()
        self.log.note("config reloaded", components=",".join(self._watched()))
        refused = self.api.reload() if self.api is not None else None
        if refused:
            self.log.note(f"API tokens not reloaded, the old ones are kept: {refused}")

    def _track_all(self) -> None:
        for name in list(self.exits.fds):
            self.exits.forget(name)
        for name in self._watched():
            self._track(name)

    def _track(self, name: str) -> None:
        component = self.session.config.components.get(name)
        pids = component_pids(component, self.session.env.environ) if component else []
        self.exits.track(name, pids)

    def _watched(self) -> list[str]:
        config = self.session.config
        return [n for n in config.components if not self.names or n in self.names]

    def _interval(self, name: str) -> float:
        return self.interval or self.session.config.probe_interval(name)
