"""A real ``open-webui serve`` on a free loopback port, for tests.

It runs from its own virtualenv (``scripts/install-openwebui`` puts it at
``$RECOVERY_OPENWEBUI_VENV``, default ``~/.cache/recovery-cli/openwebui-venv``), fully
offline, with a temporary ``DATA_DIR``, an admin account taken from environment variables
and the given OpenAI-compatible stubs as its model backends. Start-up takes ~16 s and
~800 MB, so test modules start one and share it.

Used two ways, like ``chroma_server``:
- in-process: ``OpenWebUIServer(...).start()`` / ``.stop()`` / ``.kill()``;
- as the ``service: {method: command}`` of a test: ``server.command("start"|"stop")`` is
  ``python -m tests.support.openwebui_server start|stop --spec FILE``, so a restart goes
  through the core's own service control, as an operator's would. The spec file (0600)
  holds the server's settings; the pidfile says which process is the server, whoever
  started it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.model_stub import ModelStub
from tests.support.net import free_port

DEFAULT_VENV = Path.home() / ".cache" / "recovery-cli" / "openwebui-venv"
START_TIMEOUT = 120.0
MODELS = ("stub-primary", "stub-fallback")


def venv_dir() -> Path:
    return Path(os.environ.get("RECOVERY_OPENWEBUI_VENV") or DEFAULT_VENV)


def executable() -> Path:
    return venv_dir() / "bin" / "open-webui"


def missing_reason() -> str | None:
    """Why the tests that need a real OpenWebUI must skip, or None when it is installed."""
    if executable().exists():
        return None
    return f"open-webui is not installed at {venv_dir()}; run scripts/install-openwebui"


@dataclass
class OpenWebUIServer:
    data_dir: Path
    backend_urls: list[str]
    port: int = field(default_factory=free_port)
    admin_email: str = "admin@example.com"
    admin_password: str = field(default_factory=lambda: "pw-" + secrets.token_urlsafe(12))
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    backend_key: str = field(default_factory=lambda: "sk-stub-" + secrets.token_hex(8))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir.parent / f"open-webui-{self.port}.log"

    def environment(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        return keep | {
            "DATA_DIR": str(self.data_dir),
            "PORT": str(self.port),
            "OFFLINE_MODE": "true",
            "HF_HUB_OFFLINE": "1",
            "ENABLE_OLLAMA_API": "false",
            "ENABLE_OPENAI_API": "true",
            "OPENAI_API_BASE_URLS": ";".join(self.backend_urls),
            "OPENAI_API_KEYS": ";".join(self.backend_key for _ in self.backend_urls),
            "WEBUI_SECRET_KEY": self.secret_key,
            "WEBUI_ADMIN_EMAIL": self.admin_email,
            "WEBUI_ADMIN_PASSWORD": self.admin_password,
            "ENABLE_API_KEYS": "true",
            "ENABLE_SIGNUP": "false",
            "ENABLE_VERSION_UPDATE_CHECK": "false",
            "BYPASS_EMBEDDING_AND_RETRIEVAL": "true",
            "RAG_EMBEDDING_MODEL_AUTO_UPDATE": "false",
            "ANONYMIZED_TELEMETRY": "false",
            "SCARF_NO_ANALYTICS": "true",
            "DO_NOT_TRACK": "true",
        }

    @property
    def pidfile(self) -> Path:
        return self.data_dir.parent / f"open-webui-{self.port}.pid"

    @property
    def spec_file(self) -> Path:
        return self.data_dir.parent / f"open-webui-{self.port}.json"

    def pid(self) -> int | None:
        """The server's process, whether this object or a service command started it."""
        if self.proc is not None and self.proc.poll() is None:
            return self.proc.pid
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def start(self, timeout: float = START_TIMEOUT) -> OpenWebUIServer:
        if self.pid() is not None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [str(executable()), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.environment(),
                cwd=str(self.data_dir),
                start_new_session=True,
            )
        self.pidfile.write_text(str(self.proc.pid))
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"open-webui exited with rc {self.proc.returncode}; see {self.log}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/ready").status_code == 200:
                        return
                time.sleep(0.25)
        raise TimeoutError(f"open-webui not ready on {self.port} after {timeout}s; see {self.log}")

    def stop(self, timeout: float = 20.0) -> None:
        pid = self.pid()
        if pid is not None:
            self._signal(pid, signal.SIGTERM)
            if not self._wait_gone(timeout):
                self._signal(pid, signal.SIGKILL)
                self._wait_gone(5)
        self._reap()

    def kill(self) -> None:
        """SIGKILL the server's whole process group: a crash, nothing shut down cleanly."""
        pid = self.pid()
        if pid is not None:
            self._signal(pid, signal.SIGKILL)
            self._wait_gone(5)
        self._reap()

    def _signal(self, pid: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)

    def _wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None:
                self.proc.poll()
            if self.pid() is None:
                return True
            time.sleep(0.05)
        return False

    def _reap(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)

    @property
    def running(self) -> bool:
        return self.pid() is not None

    def command(self, action: str) -> list[str]:
        """The argv of a ``service: {method: command}`` that starts or stops this server."""
        spec = {
            "data_dir": str(self.data_dir),
            "backend_urls": self.backend_urls,
            "port": self.port,
            "admin_email": self.admin_email,
            "admin_password": self.admin_password,
            "secret_key": self.secret_key,
            "backend_key": self.backend_key,
        }
        fd = os.open(self.spec_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(spec, out)
        module = "tests.support.openwebui_server"
        return [sys.executable, "-m", module, action, "--spec", str(self.spec_file)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Admin:
    """The test's own admin access to a server: one sign-in, then an API key (a JWT would
    be revoked by an MFA policy change; keys are not)."""

    def __init__(self, server: OpenWebUIServer) -> None:
        import httpx

        self.server = server
        self.client = httpx.Client(base_url=server.url, timeout=20.0)
        self.token = self.sign_in(server.admin_email, server.admin_password)
        reply = self.client.post("/api/v1/auths/api_key", headers=self._bearer(self.token))
        reply.raise_for_status()
        self.api_key: str = reply.json()["api_key"]

    def close(self) -> None:
        self.client.close()

    def _bearer(self, credential: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {credential}"}

    def sign_in(self, email: str, password: str) -> str:
        reply = self.client.post(
            "/api/v1/auths/signin", json={"email": email, "password": password}
        )
        reply.raise_for_status()
        return str(reply.json()["token"])

    def get(self, path: str) -> Any:
        reply = self.client.get(path, headers=self._bearer(self.api_key))
        reply.raise_for_status()
        return reply.json()

    def post(self, path: str, body: Any, credential: str | None = None) -> Any:
        reply = self.client.post(path, json=body, headers=self._bearer(credential or self.api_key))
        reply.raise_for_status()
        return reply.json()

    def export(self) -> dict[str, Any]:
        return dict(self.get("/api/v1/configs/export"))

    def add_user(self, email: str, password: str, role: str = "user") -> None:
        body = {"name": email.split("@")[0], "email": email, "password": password, "role": role}
        self.post("/api/v1/auths/add", body)

    def set_default_model(self, model: str | None) -> None:
        config = self.get("/api/v1/configs/models")
        self.post("/api/v1/configs/models", {**config, "DEFAULT_MODELS": model})

    def put_back(self, export: dict[str, Any]) -> None:
        """Undo whatever a test changed in default models, banners and connections."""
        models = self.get("/api/v1/configs/models")
        models.update(
            DEFAULT_MODELS=export["ui.default_models"],
            MODEL_ORDER_LIST=export["ui.model_order_list"],
        )
        models.update(DEFAULT_PINNED_MODELS=export["ui.default_pinned_models"])
        self.post("/api/v1/configs/models", models)
        self.post("/api/v1/configs/banners", {"banners": export["ui.banners"]})
        connections = self.get("/openai/config")
        connections.update(
            ENABLE_OPENAI_API=export["openai.enable"],
            OPENAI_API_CONFIGS=export["openai.api_configs"],
        )
        self.post("/openai/config/update", connections)


def expired_copy(token: str, secret_key: str, seconds_ago: int = 120) -> str:
    """The same session token with its expiry moved into the past, signed with the server's
    key: a real token the real server rejects because it expired (HS256, as OpenWebUI signs)."""
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header, payload, _ = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] = int(time.time()) - seconds_ago
    signing_input = f"{header}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret_key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@dataclass(frozen=True)
class Stack:
    stubs: tuple[ModelStub, ...]
    server: OpenWebUIServer
    admin: Admin

    @property
    def stub(self) -> ModelStub:
        return self.stubs[0]


@contextlib.contextmanager
def running_stack(root: Path, backends: Sequence[tuple[str, ...]] = (MODELS,)) -> Iterator[Stack]:
    """One model stub per backend (connection ``i`` is ``backends[i]``), an OpenWebUI using
    them (default model: the first of the first), and admin access; all stopped on exit."""
    with contextlib.ExitStack() as running:
        stubs = tuple(running.enter_context(ModelStub(models)) for models in backends)
        server = OpenWebUIServer(root / "data", [stub.base_url for stub in stubs]).start()
        running.callback(server.stop)
        admin = Admin(server)
        running.callback(admin.close)
        admin.set_default_model(backends[0][0])
        yield Stack(stubs, server, admin)


def module_stack(
    factory: pytest.TempPathFactory, backends: Sequence[tuple[str, ...]] = (MODELS,)
) -> Iterator[Stack]:
    """The body of a module-scoped fixture: one stack per test module (start-up ~12 s,
    ~800 MB), skipped with the reason when open-webui is not installed."""
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    with running_stack(factory.mktemp("owui"), backends) as running:
        yield running


def main(argv: list[str] | None = None) -> int:
    """``start`` (returns once the server is ready; it keeps running) or ``stop``."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.openwebui_server")
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("--spec", type=Path, required=True)
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    server = OpenWebUIServer(**{**spec, "data_dir": Path(spec["data_dir"])})
    try:
        server.start() if args.action == "start" else server.stop()
    except (RuntimeError, TimeoutError) as exc:
        print(exc, file=sys.stderr)
        return 1
    if server.proc is not None:
        server.proc.returncode = 0  # it outlives this command, as a service does
    return 0


if __name__ == "__main__":
    sys.exit(main())
