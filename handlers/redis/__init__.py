"""The Redis kind: probe, classification of failures, and the strategies."""
