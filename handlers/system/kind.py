"""The system kind as the registry sees it."""

from recovery_cli.handlers.base import KindSpec

KIND = KindSpec(
    description="the host: disk, memory, file handles, processes",
    handler="recovery_cli.handlers.system.handler:SystemHandler",
    settings="recovery_cli.handlers.system.settings:validate",
    strategies=("disk_cleanup", "memory_gc", "file_handle_cleanup", "process_restart"),
    strategy_module="recovery_cli.handlers.system.strategies",
    destructive=("disk_cleanup", "file_handle_cleanup"),
)
