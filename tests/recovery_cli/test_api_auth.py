"""Who may call the API: tokens from the environment, roles, the rate limit."""

from __future__ import annotations

import pytest

from recovery_cli.api_auth import Authenticator, Denied, Gate, RateLimiter
from recovery_cli.config import ApiConfig
from recovery_cli.errors import UsageError

READ = "r" * 20
ADMIN = "a" * 20


def api_config(**extra: object) -> ApiConfig:
    return ApiConfig.model_validate(
        {
            "tokens": [
                {"name": "grafana", "env": "READ_T", "role": "read"},
                {"name": "oncall", "env": "ADMIN_T", "role": "admin"},
            ],
            **extra,
        }
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gate(requests: int = 2, clock: Clock | None = None) -> Gate:
    auth = Authenticator(api_config(), {"READ_T": READ, "ADMIN_T": ADMIN})
    return Gate(auth, RateLimiter(requests, 60, clock or Clock()))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Basic {ADMIN}",
        ADMIN,
        f"Bearer {ADMIN[:-1]}",
        f"Bearer {ADMIN}x",
    ],
)
def test_anything_but_a_whole_configured_token_is_401(header: str | None) -> None:
    with pytest.raises(Denied) as refused:
        gate().check(header, "read")
    assert refused.value.status == 401
    assert refused.value.headers == {"WWW-Authenticate": "Bearer"}


def test_the_scheme_is_case_insensitive_and_names_the_caller() -> None:
    caller = gate().check(f"bearer {ADMIN}", "admin")
    assert (caller.name, caller.role) == ("oncall", "admin")
    assert gate().check(f"Bearer {READ}", "read").name == "grafana"


def test_a_read_token_may_read_and_not_change() -> None:
    with pytest.raises(Denied) as refused:
        gate().check(f"Bearer {READ}", "admin")
    assert refused.value.status == 403


def test_admin_calls_past_the_limit_are_429_until_the_window_moves() -> None:
    clock = Clock()
    guarded = gate(requests=2, clock=clock)
    guarded.check(f"Bearer {ADMIN}", "admin")
    clock.now += 10
    guarded.check(f"Bearer {ADMIN}", "admin")
    with pytest.raises(Denied) as refused:
        guarded.check(f"Bearer {ADMIN}", "admin")
    assert refused.value.status == 429
    assert refused.value.headers == {"Retry-After": "50"}
    for _ in range(5):
        guarded.check(f"Bearer {READ}", "read")  # reads are not counted
    clock.now += 50
    assert guarded.check(f"Bearer {ADMIN}", "admin").name == "oncall"


def test_a_refused_call_does_not_use_up_the_limit() -> None:
    limiter = RateLimiter(1, 60, Clock())
    assert limiter.take("oncall") is None
    assert [limiter.take("oncall") is not None for _ in range(3)] == [True] * 3
    assert len(limiter.calls["oncall"]) == 1


def test_without_tokens_reads_are_anonymous_and_changes_refused() -> None:
    open_gate = Gate(Authenticator(ApiConfig(), {}), RateLimiter(1, 60))
    assert open_gate.check(None, "read").name == "anonymous"
    with pytest.raises(Denied) as refused:
        open_gate.check(f"Bearer {ADMIN}", "admin")
    assert refused.value.status == 403


def test_tokens_must_be_set_and_long_enough() -> None:
    with pytest.raises(UsageError, match="environment variable ADMIN_T is not set"):
        Authenticator(api_config(), {"READ_T": READ})
    with pytest.raises(UsageError, match="fewer than 16 characters"):
        Authenticator(api_config(), {"READ_T": READ, "ADMIN_T": "short-token"})


def test_token_names_are_unique_and_tls_files_come_in_pairs() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unique"):
        ApiConfig.model_validate({"tokens": [{"name": "a", "env": "X"}, {"name": "a", "env": "Y"}]})
    with pytest.raises(ValidationError, match="go together"):
        api_config(ssl_certfile="/etc/cert.pem")
