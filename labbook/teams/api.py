"""Team API (stub)."""
