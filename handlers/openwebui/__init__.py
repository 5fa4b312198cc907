"""The OpenWebUI kind: API checks, config state, and the strategies."""
