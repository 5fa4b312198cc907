"""The runner's own heartbeat: Healthchecks.io-style pings to ``alerting.heartbeat_url``.

``recover`` pings ``URL/start`` as it begins and, as it ends, ``URL`` for exit code 0 or
``URL/<code>`` for any other exit code (Healthchecks counts a non-zero code as a failure, like
``URL/fail``, and shows the code); both carry ``?rid=`` so overlapping cron runs pair up.
``watch`` pings ``URL/start`` once, then after its runs, at most once per
``alerting.heartbeat_interval_seconds``, with the worst of each component's latest code.

A ping is POSTed with a one-line body (the command and its code), has a total deadline of
``alerting.heartbeat_timeout_seconds`` (DNS, connect, send, answer together), follows no
redirect and never raises: a failure is one warning line naming only the URL's scheme, host and
port (a Healthchecks URL's path is its secret), and the run's outcome is what it was."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recovery_cli.config import http_url_problem
from recovery_cli.errors import ExitCode, worst

if TYPE_CHECKING:
    import socket
    import urllib.request

    from recovery_cli.config import Alerting


@dataclass(frozen=True)
class Target:
    url: str
    timeout: float


def target_of(alerting: Alerting, environ: Mapping[str, str]) -> Target | str | None:
    """Where to ping: none configured, the target, or why the configured one cannot be used
    (``heartbeat_url_env`` names a variable that is unset or holds no http(s) URL)."""
    url = alerting.heartbeat_url
    name = alerting.heartbeat_url_env
    if name:
        url = environ.get(name)
        if not url:
            return f"heartbeat not sent: environment variable {name} is not set"
        problem = http_url_problem(url)
        if problem:
            return f"heartbeat not sent: {name}: {problem}"
    if not url:
        return None
    return Target(url, alerting.heartbeat_timeout_seconds)


def suffix_for(code: int) -> str:
    """The path a run ending with ``code`` pings: the bare URL for success, else the code."""
    return "" if code == ExitCode.OK else f"/{code}"


def describe(code: int) -> str:
    try:
        return f"exit {code} ({ExitCode(code).name.lower()})"
    except ValueError:
        return f"exit {code}"


@dataclass
class Heartbeat:
    """One process's pings. ``warn`` takes each failure's line; the same line twice in a
    row is said once (a ping endpoint that is down is one line, not one a minute)."""

    target: Target | str | None
    command: str
    warn: Callable[[str], None]
    run_id: str | None = None
    _last_warning: str | None = field(default=None, init=False, repr=False)

    @property
    def enabled(self) -> bool:
        return self.target is not None

    def start(self) -> None:
        self._ping("/start", f"recovery {self.command}: started")

    def finish(self, code: int) -> None:
        self._ping(suffix_for(code), f"recovery {self.command}: {describe(code)}")

    def _ping(self, suffix: str, body: str) -> None:
        if isinstance(self.target, str):
            self._say(self.target)
        elif self.target is not None:
            url = ping_url(self.target.url, suffix, self.run_id)
            problem = send(url, body, self.target.timeout)
            if problem:
                self._say(f"heartbeat ping to {origin(url)} failed: {problem}")
            else:
                self._last_warning = None

    def _say(self, line: str) -> None:
        if line != self._last_warning:
            self.warn(f"warning: {line}")
        self._last_warning = line


def for_run(
    alerting: Alerting, environ: Mapping[str, str], warn: Callable[[str], None], command: str
) -> Heartbeat:
    """The pings of one ``recover`` run: their own ``rid``."""
    target = target_of(alerting, environ)
    if not isinstance(target, Target):
        return Heartbeat(target, command, warn)
    import uuid

    return Heartbeat(target, command, warn, str(uuid.uuid4()))


@dataclass
class Pacer:
    """``watch``'s pings: the latest code of each component, sent at most once per
    ``interval`` seconds (of a monotonic clock the caller reads)."""

    interval: float
    codes: dict[str, ExitCode] = field(default_factory=dict)
    last_sent: float | None = None

    def ran(self, component: str, code: ExitCode) -> None:
        self.codes[component] = code

    def keep_only(self, components: Sequence[str]) -> None:
        self.codes = {n: c for n, c in self.codes.items() if n in components}

    def due(self, now: float) -> ExitCode | None:
        """The code to ping now, or None while the last ping is too recent."""
        if self.last_sent is not None and 0 <= now - self.last_sent < self.interval:
            return None
        self.last_sent = now
        return worst(list(self.codes.values()))


def ping_url(base: str, suffix: str, run_id: str | None) -> str:
    """``base`` with ``suffix`` appended to its path and ``rid`` added to its query."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(base)
    query = "&".join(q for q in (parts.query, f"rid={run_id}" if run_id else "") if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + suffix, query, ""))


def origin(url: str) -> str:
    """``scheme://host[:port]``: what a message may say of a ping URL."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or "?"
    host = f"[{host}]" if ":" in host else host
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}"


def send(url: str, body: str, timeout: float) -> str | None:
    """POST ``body`` to ``url`` within ``timeout`` seconds in all: None, or what went wrong.
    The request runs in a daemon thread; at the deadline its sockets are shut, so a server
    that trickles its reply, a byte at a time within each socket timeout, cannot keep the
    thread (and its descriptor) alive past the ping."""
    outcome: list[str | None] = []
    sockets: list[socket.socket] = []
    worker = threading.Thread(
        target=_post, args=(url, body, timeout, outcome, sockets), daemon=True
    )
    worker.start()
    worker.join(timeout)
    if worker.is_alive() or not outcome:
        _shut(sockets)
        return f"no answer within {timeout:g}s"
    return outcome[0]


def _shut(sockets: list[socket.socket]) -> None:
    import socket

    for sock in list(sockets):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()


def _post(
    url: str, body: str, timeout: float, outcome: list[str | None], sockets: list[socket.socket]
) -> None:
    try:
        outcome.append(_request(url, body, timeout, sockets))
    except Exception as exc:  # a ping never raises: whatever went wrong is its message
        outcome.append(_why(exc, timeout))


def _request(url: str, body: str, timeout: float, sockets: list[socket.socket]) -> str | None:
    import urllib.request

    from recovery_cli import __version__

    request = urllib.request.Request(
        _without_userinfo(url),
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "text/plain", "User-Agent": f"recovery-cli/{__version__}"},
    )
    authorization = _basic_auth(url)
    if authorization:
        request.add_unredirected_header("Authorization", authorization)
    opener = urllib.request.build_opener(*_tracking_handlers(sockets), _no_redirects())
    with opener.open(request, timeout=timeout) as response:
        response.read(65536)
        status = int(response.status)
    return None if status < 300 else f"answered HTTP {status}"


def _tracking_handlers(sockets: list[socket.socket]) -> list[urllib.request.BaseHandler]:
    """urllib's HTTP and HTTPS handlers, each connection's socket added to ``sockets`` as
    soon as it is created (before a TLS handshake), so ``send`` can shut it at the deadline."""
    import urllib.request

    class Tracking(urllib.request.AbstractHTTPHandler):
        def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
            def connection(host: str, **args: Any) -> Any:
                conn = http_class(host, **args)
                create = conn._create_connection

                def created(*a: Any, **k: Any) -> socket.socket:
                    sock: socket.socket = create(*a, **k)
                    sockets.append(sock)
                    return sock

                conn._create_connection = created
                return conn

            return super().do_open(connection, req, **kwargs)

    class TrackingHTTP(Tracking, urllib.request.HTTPHandler):
        pass

    class TrackingHTTPS(Tracking, urllib.request.HTTPSHandler):
        pass

    return [TrackingHTTP(), TrackingHTTPS()]


def _why(exc: Exception, timeout: float) -> str:
    """A short reason that never quotes the URL."""
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        return f"answered HTTP {exc.code}"
    reason: object = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return type(reason).__name__


def _without_userinfo(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _basic_auth(url: str) -> str | None:
    """userinfo in the URL (from ``heartbeat_url_env`` only) as a Basic header."""
    import base64
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.username is None:
        return None
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def _no_redirects() -> urllib.request.BaseHandler:
    import urllib.request

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        """A redirect is an answer, not a place to follow (it could lead anywhere)."""

        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    return NoRedirects()
