"""The openwebui kind as the registry sees it."""

from recovery_cli.handlers.base import KindSpec

KIND = KindSpec(
    description="an OpenWebUI server",
    handler="recovery_cli.handlers.openwebui.handler:OpenWebUIHandler",
    settings="recovery_cli.handlers.openwebui.settings:validate",
    strategies=("token_refresh", "model_failover", "graceful_degradation", "restore_config"),
    strategy_module="recovery_cli.handlers.openwebui.strategies",
)
