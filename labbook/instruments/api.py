"""Instrument API (stub)."""
