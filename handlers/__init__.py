"""Handler kinds: the contract (``base``), shared helpers, and one package per kind."""
