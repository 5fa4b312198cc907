"""The redis kind as the registry sees it."""

from recovery_cli.handlers.base import KindSpec

KIND = KindSpec(
    description="a Redis server",
    handler="recovery_cli.handlers.redis.handler:RedisHandler",
    settings="recovery_cli.handlers.redis.settings:validate",
    strategies=("reconnect", "flush_corrupted", "restore_flushed", "restart_container"),
    strategy_module="recovery_cli.handlers.redis.strategies",
    destructive=("flush_corrupted", "restore_flushed"),
)
