"""Serving the HTTP API: where to listen (``HOST:PORT`` or ``unix:PATH``), whether that is
allowed, and uvicorn in a thread beside ``watch``'s loop (or ``serve``'s wait).

The socket is bound here, before uvicorn starts, so an address in use or a bad TLS file is
one clear line and exit 2, not a log line in a thread. A non-loopback address needs tokens
and TLS unless ``--insecure`` is given. A unix socket is created owner-only (0600)."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recovery_cli.config import ApiConfig
from recovery_cli.errors import UsageError

if TYPE_CHECKING:
    from recovery_cli.invocation import Session
    from recovery_cli.watch import EventLog

UNIX_PREFIX = "unix:"
START_TIMEOUT = 10.0
GRACEFUL_SECONDS = 5
BACKLOG = 128


@dataclass(frozen=True)
class Listen:
    host: str | None = None
    port: int | None = None
    path: Path | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return f"{UNIX_PREFIX}{self.path}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def loopback(self) -> bool:
        if self.path is not None:
            return True
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host or "").is_loopback
        except ValueError:
            return False  # a host name: it may resolve to anything


def parse_listen(text: str) -> Listen:
    text = text.strip()
    if text.startswith(UNIX_PREFIX):
        path = text[len(UNIX_PREFIX) :]
        if not path.startswith("/"):
            raise UsageError(f"--listen {text!r}: a unix socket path must be absolute")
        return Listen(path=Path(path))
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {text!r}: use HOST:PORT (e.g. 127.0.0.1:9464) or unix:/PATH")
    return Listen(host=host, port=int(port))


def check_exposure(listen: Listen, api: ApiConfig, insecure: bool) -> None:
    """Refuse to serve beyond this host without tokens and TLS (``--insecure`` allows it)."""
    if listen.loopback or insecure:
        return
    missing = [
        what
        for what, present in (("api.tokens", api.tokens), ("api.ssl_certfile", api.ssl_certfile))
        if not present
    ]
    if missing:
        raise UsageError(
            f"--listen {listen}: not a loopback address, and {' and '.join(missing)} "
            "not configured; add them, or pass --insecure"
        )


def bind(listen: Listen) -> socket.socket:
    try:
        if listen.path is not None:
            return _bind_unix(listen.path)
        family = socket.AF_INET6 if ":" in (listen.host or "") else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((listen.host, listen.port))
        except BaseException:
            sock.close()
            raise
    except OSError as exc:
        raise UsageError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    sock.listen(BACKLOG)
    return sock


def _bind_unix(path: Path) -> socket.socket:
    _clear_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(old)
    sock.listen(BACKLOG)
    return sock


def _clear_stale_socket(path: Path) -> None:
    """A socket left by a process that died is removed; anything else at the path is not."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise UsageError(f"cannot listen on {UNIX_PREFIX}{path}: it exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # nobody answers: stale
        return
    finally:
        probe.close()
    raise UsageError(f"cannot listen on {UNIX_PREFIX}{path}: another process is serving there")


class ApiServer:
    """uvicorn serving ``app`` on an already bound socket, in a daemon thread."""

    def __init__(self, app: Any, listen: Listen, api: ApiConfig) -> None:
        import uvicorn

        _quiet_uvicorn()
        self.listen = listen
        self.sock = bind(listen)
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ssl_certfile=api.ssl_certfile,
            ssl_keyfile=api.ssl_keyfile,
            timeout_graceful_shutdown=GRACEFUL_SECONDS,
        )
        try:
            config.load()  # TLS files are read here: a bad one fails now, in one line
        except (OSError, ValueError) as exc:
            self.sock.close()
            raise UsageError(f"cannot serve TLS: {exc}") from None
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name="recovery-api", daemon=True)

    def _serve(self) -> None:
        with contextlib.suppress(SystemExit):
            self.server.run(sockets=[self.sock])

    def start(self) -> None:
        self.thread.start()
        self.thread.join(0)
        waited = threading.Event()
        for _ in range(int(START_TIMEOUT / 0.05)):
            if self.server.started or not self.thread.is_alive():
                break
            waited.wait(0.05)
        if not self.server.started:
            raise UsageError(f"the API did not start on {self.listen}")

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(GRACEFUL_SECONDS + 5)
        self.sock.close()
        if self.listen.path is not None:
            with contextlib.suppress(OSError):
                self.listen.path.unlink()


def _quiet_uvicorn() -> None:
    """uvicorn logs through ``logging``; the tool prints its own one-line events."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers = [logging.NullHandler()]
        logger.propagate = False


DRAIN_SECONDS = 30.0  # how long the way out waits for recoveries an alert started


class RunningApi:
    """The API of one process: its app, its server, and its gate reloaded with the config."""

    def __init__(
        self,
        session: Session,
        listen: Listen,
        insecure: bool,
        log: EventLog | None = None,
    ) -> None:
        from recovery_cli.alert_receiver import AlertReceiver
        from recovery_cli.api_actions import ApiActions
        from recovery_cli.api_app import Api
        from recovery_cli.api_auth import Gate

        api = session.config.api
        check_exposure(listen, api, insecure)
        gate = Gate.from_config(api, session.env.environ)
        receiver = AlertReceiver(
            api.alertmanager.component_label, api.alertmanager.dedup_seconds, session.env.host
        )
        self.session = session
        actions = ApiActions(session, log.record if log else None)
        self.api = Api(actions, gate, receiver, log.note if log else None)
        self.server = ApiServer(self.api.app, listen, api)
        self.server.start()

    def reload(self) -> str | None:
        """Tokens again from the reloaded config; the reason when they do not load (the old
        ones are kept). The address and TLS files stay until a restart."""
        from recovery_cli.api_auth import Gate
        from recovery_cli.errors import RecoveryError

        api = self.session.config.api
        try:
            self.api.gate = Gate.from_config(api, self.session.env.environ)
        except RecoveryError as exc:
            return "; ".join(exc.lines())
        self.api.receiver.component_label = api.alertmanager.component_label
        self.api.receiver.dedup_seconds = api.alertmanager.dedup_seconds
        return None

    def stop(self) -> None:
        self.server.stop()
        self.api.background.drain(DRAIN_SECONDS)
