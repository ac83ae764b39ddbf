"""Pages of equipment care (routes attach to ``labbook.care.bp``); one module per topic."""
from __future__ import annotations

from labbook.care import (  # noqa: F401
    views_dashboard,
    views_faults,
    views_kiosk,
    views_outages,
    views_usage,
)
