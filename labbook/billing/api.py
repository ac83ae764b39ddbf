"""Billing JSON API (placeholder: filled by the billing issue)."""
