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
from typing import Any

from recovery_cli.config import ApiConfig
from recovery_cli.errors import UsageError

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
    digits = port.isascii() and port.isdigit()
    if not sep or not host or not digits or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {text!r}: use HOST:PORT (e.g. 127.0.0.1:9464) or unix:/PATH")
    return Listen(host=host, port=int(port))


def check_exposure(listen: Listen, tokens: bool, tls: bool, insecure: bool) -> None:
    """Refuse to serve beyond this host without tokens and TLS (``--insecure`` allows it)."""
    if listen.loopback or insecure:
        return
    missing = [
        what for what, present in (("api.tokens", tokens), ("api.ssl_certfile", tls)) if not present
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
    _check_socket_dir(path.parent)
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


def _check_socket_dir(directory: Path) -> None:
    """Another user who may write the directory (and it is not sticky) could swap the socket
    for their own: refused."""
    try:
        info = directory.stat()
    except OSError as exc:
        raise UsageError(f"cannot listen in {directory}: {exc.strerror}") from None
    shared = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if shared and not info.st_mode & stat.S_ISVTX:
        raise UsageError(
            f"cannot listen in {directory}: others may write to it (make it 0755 or sticky)"
        )


def _clear_stale_socket(path: Path) -> None:
    """A socket of ours left by a process that died (it refuses connections) is removed;
    anything else at the path is left alone and refused."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    where = f"cannot listen on {UNIX_PREFIX}{path}"
    if not stat.S_ISSOCK(info.st_mode):
        raise UsageError(f"{where}: it exists and is not a socket")
    if info.st_uid != os.geteuid():
        raise UsageError(f"{where}: a socket of another user is there")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        path.unlink()  # nobody answers: stale
        return
    except OSError as exc:
        raise UsageError(f"{where}: a socket is there in use ({exc.strerror})") from None
    finally:
        probe.close()
    raise UsageError(f"{where}: another process is serving there")


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = path.lstat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


class ApiServer:
    """uvicorn serving ``app`` on an already bound socket, in a daemon thread."""

    def __init__(self, app: Any, listen: Listen, api: ApiConfig) -> None:
        import uvicorn

        _quiet_uvicorn()
        from recovery_cli.api_connections import CallLimit, guarded_protocol, raise_file_limit

        self.listen = listen
        self.sock = bind(listen)
        self.identity = _identity(listen.path) if listen.path else None
        raise_file_limit()
        config = uvicorn.Config(
            CallLimit(app),
            http=guarded_protocol(),
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
        path = self.listen.path
        if path is not None and self.identity is not None and _identity(path) == self.identity:
            with contextlib.suppress(OSError):
                path.unlink()  # ours still: someone else's file there is left alone


def _quiet_uvicorn() -> None:
    """uvicorn logs through ``logging``; the tool prints its own one-line events."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers = [logging.NullHandler()]
        logger.propagate = False
