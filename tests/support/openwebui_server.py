"""A real ``open-webui serve`` on a free loopback port, for tests.

It runs from its own virtualenv (``scripts/install-openwebui`` puts it at
``$RECOVERY_OPENWEBUI_VENV``, default ``~/.cache/recovery-cli/openwebui-venv``), fully
offline, with a temporary ``DATA_DIR``, an admin account taken from environment variables
and the given OpenAI-compatible stubs as its model backends. Start-up takes ~16 s and
~800 MB, so test modules start one and share it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
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

    def start(self, timeout: float = START_TIMEOUT) -> OpenWebUIServer:
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
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


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
    stub: ModelStub
    server: OpenWebUIServer
    admin: Admin


@contextlib.contextmanager
def running_stack(root: Path, models: tuple[str, ...] = MODELS) -> Iterator[Stack]:
    """A model stub, an OpenWebUI using it (default model: the first), and admin access;
    all stopped and closed on exit."""
    with ModelStub(models) as stub:
        server = OpenWebUIServer(root / "data", [stub.base_url]).start()
        try:
            admin = Admin(server)
            try:
                admin.set_default_model(models[0])
                yield Stack(stub, server, admin)
            finally:
                admin.close()
        finally:
            server.stop()


def module_stack(factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The body of a module-scoped fixture: one stack per test module (start-up ~12 s,
    ~800 MB), skipped with the reason when open-webui is not installed."""
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    with running_stack(factory.mktemp("owui")) as running:
        yield running
