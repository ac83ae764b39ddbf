"""Billing commands (placeholder: filled by the billing issue)."""
from __future__ import annotations

from flask.cli import AppGroup

billing_cli = AppGroup("billing", help="Billing periods: refresh, close, export.")
usage_cli = AppGroup("usage", help="Usage history: import from another system.")
