"""Billing pages (placeholder: filled by the billing issue)."""
