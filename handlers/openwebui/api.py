"""A small HTTP client for the OpenWebUI routes the openwebui handler uses.

Every call has an explicit timeout bounded by the caller's deadline; transport errors come
back as a ``Reply`` with ``status=None`` instead of exceptions, so callers classify one shape.
httpx is imported inside ``open_client`` (never at module import time).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

# OpenWebUI's own wording (open_webui/constants.py) for a signed-in user without the role.
ACCESS_PROHIBITED_TEXT = "do not have permission"
PER_CALL_TIMEOUT = 10.0
MIN_CALL_TIMEOUT = 0.2


@dataclass(frozen=True)
class Reply:
    """One HTTP exchange: ``status`` None means the server could not be reached."""

    status: int | None
    body: Any = None
    error: str = ""  # no reply: why (the caller names the request)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def message(self) -> str:
        """The server's own short reason (``detail`` or ``error.message``), or the error."""
        if self.status is None:
            return self.error
        return f"HTTP {self.status}: {detail_of(self.body)}".rstrip(": ")


def detail_of(body: Any) -> str:
    if isinstance(body, Mapping):
        detail = body.get("detail")
        if detail is None and isinstance(body.get("error"), Mapping):
            detail = body["error"].get("message")
        if detail is not None:
            return str(detail)[:300]
    if isinstance(body, str):
        return body[:300]
    return ""


class Api:
    """Calls against one OpenWebUI base URL with one bearer credential and one deadline."""

    def __init__(
        self, client: httpx.Client, deadline: float, credential: str | None = None
    ) -> None:
        self.client = client
        self.deadline = deadline
        self.credential = credential

    def with_credential(self, credential: str | None) -> Api:
        return Api(self.client, self.deadline, credential)

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def get(self, path: str, **params: Any) -> Reply:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: Any = None) -> Reply:
        return self.request("POST", path, json=body)

    def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        import httpx

        budget = min(PER_CALL_TIMEOUT, self.remaining())
        if budget < MIN_CALL_TIMEOUT:
            return Reply(None, error="out of time")
        headers = {"Authorization": f"Bearer {self.credential}"} if self.credential else {}
        try:
            response = self.client.request(method, path, headers=headers, timeout=budget, **kwargs)
        except httpx.TimeoutException:
            return Reply(None, error=f"timed out after {budget:.1f}s")
        except httpx.HTTPError as exc:
            return Reply(None, error=f"{type(exc).__name__}: {exc}")
        return Reply(response.status_code, _json_or_text(response))


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


@contextmanager
def open_client(base_url: str, verify_tls: bool = True) -> Iterator[httpx.Client]:
    import httpx

    # follow_redirects off: a redirect to a login page must not look like success.
    with httpx.Client(
        base_url=base_url.rstrip("/"), verify=verify_tls, follow_redirects=False
    ) as client:
        yield client


def is_access_prohibited(reply: Reply) -> bool:
    """401 ACCESS_PROHIBITED (a valid user without the role) and 403 are permission
    problems, not a bad credential: signing in again would not help."""
    if reply.status == 403:
        return True
    return reply.status == 401 and ACCESS_PROHIBITED_TEXT in detail_of(reply.body).lower()


def chat_body(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "ping"}],
        "stream": False,
        "max_tokens": 1,
    }
