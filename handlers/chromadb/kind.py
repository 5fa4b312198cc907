"""The chromadb kind as the registry sees it."""

from recovery_cli.handlers.base import KindSpec

KIND = KindSpec(
    description="a ChromaDB server or persist directory",
    handler="recovery_cli.handlers.chromadb.handler:ChromaHandler",
    settings="recovery_cli.handlers.chromadb.settings:validate",
    strategies=(
        "query_retry",
        "collection_reload",
        "snapshot",
        "snapshot_rollback",
        "index_rebuild",
    ),
    strategy_module="recovery_cli.handlers.chromadb.strategies",
    destructive=("snapshot", "snapshot_rollback", "index_rebuild"),
)
