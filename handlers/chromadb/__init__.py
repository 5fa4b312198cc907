"""The ChromaDB kind: HTTP and offline probes, snapshots, and the strategies."""
