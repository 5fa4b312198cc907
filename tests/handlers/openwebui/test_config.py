"""The openwebui kind's config-time parts, without a server: the warning for a
``required_models`` failover cannot satisfy, the chains the shipped config gives a server
that is down, and which failures enter a degraded mode."""

from __future__ import annotations

from pathlib import Path

from recovery_cli.config import load_config
from recovery_cli.handlers.openwebui.kind import KIND
from recovery_cli.handlers.openwebui.settings import warnings
from tests.handlers.openwebui.helpers import FALLBACK, PRIMARY

SHIPPED = Path(__file__).parents[3] / "recovery_config.yml"
FAILOVER = {"model_failover": {"fallback_model": FALLBACK}}


def test_requiring_the_primary_is_a_warning_naming_the_setting() -> None:
    found = warnings({"url": "http://owui:8080", "required_models": [PRIMARY]}, FAILOVER)
    assert [w.key for w in found] == ["settings.required_models"]
    assert PRIMARY in found[0].message and "never ends" in found[0].message


def test_requiring_only_fallbacks_or_nothing_is_no_warning() -> None:
    url = {"url": "http://owui:8080"}
    assert warnings({**url, "required_models": [FALLBACK]}, FAILOVER) == []
    assert warnings({**url, "required_models": []}, FAILOVER) == []
    assert warnings({**url, "required_models": [PRIMARY]}, {}) == []  # no failover to undo


def test_the_shipped_config_restarts_a_down_server_and_nothing_else() -> None:
    config = load_config(SHIPPED)
    for failure_type in ("unreachable", "not_ready", "db_unhealthy"):
        assert config.chain_for("openwebui", failure_type) == ["restart_service"]
        assert config.components["openwebui"].strategies["restart_service"].approval == "required"
    # the default chain is all API strategies: none of them is run for a server that is down
    assert config.components["openwebui"].chain
    for strategy in config.components["openwebui"].chain:
        assert "unreachable" in KIND.cannot_help[strategy]
    assert "restart_service" not in config.chain_for("openwebui", "token_invalid")
    assert (
        warnings(
            config.components["openwebui"].settings,
            {s: c.params for s, c in config.components["openwebui"].strategies.items()},
        )
        == []
    )


def test_only_failures_users_feel_enter_a_degraded_mode() -> None:
    felt = set(KIND.degraded_failure_types)
    assert {"unreachable", "upstream_unavailable", "model_missing"} <= felt
    assert not felt & {"token_invalid", "forbidden", "auth_invalid_credentials"}
