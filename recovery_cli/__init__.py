"""recovery-cli: operator-facing recovery of infrastructure components."""

__version__ = "0.1.0"
