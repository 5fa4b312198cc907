"""The openwebui kind as the registry sees it."""

from recovery_cli.handlers.base import KindSpec

# The failure types only this tool feels: its own admin credential. Users sign in with
# their own accounts and keep chatting while the tool's token or password is stale.
CREDENTIAL_FAILURES = (
    "token_invalid",
    "forbidden",
    "auth_invalid_credentials",
    "auth_rate_limited",
    "auth_mfa_required",
    "auth_pending",
    "auth_changed",
    "credentials_missing",
)
# The server itself is down: nothing that talks to its API can help, only a restart.
SERVER_DOWN = ("unreachable", "not_ready", "db_unhealthy")
MODEL_FAILURES = ("model_missing", "upstream_unavailable")

KIND = KindSpec(
    description="an OpenWebUI server",
    handler="recovery_cli.handlers.openwebui.handler:OpenWebUIHandler",
    settings="recovery_cli.handlers.openwebui.settings:validate",
    strategies=(
        "token_refresh",
        "model_failover",
        "graceful_degradation",
        "restore_config",
        "restart_service",
    ),
    strategy_module="recovery_cli.handlers.openwebui.strategies",
    destructive=("model_failover", "graceful_degradation", "restore_config"),
    # What users feel: the UI is down, or chat fails / a model they pick is gone. Not the
    # credential failures above, and not a failover that worked (the probe is healthy).
    degraded_failure_types=(*SERVER_DOWN, *MODEL_FAILURES),
    cannot_help={
        "token_refresh": SERVER_DOWN,
        "model_failover": SERVER_DOWN,
        "graceful_degradation": SERVER_DOWN,
        "restore_config": SERVER_DOWN,
        # a new process neither fixes the tool's credential nor brings a backend back
        "restart_service": (*CREDENTIAL_FAILURES, *MODEL_FAILURES),
    },
    warnings="recovery_cli.handlers.openwebui.settings:warnings",
)
