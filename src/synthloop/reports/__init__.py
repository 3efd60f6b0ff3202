"""The human-readable story of a run."""
