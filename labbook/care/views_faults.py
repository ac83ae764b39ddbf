"""Pages of equipment care (routes attach to ``labbook.care.bp``)."""
from __future__ import annotations

from labbook.care import bp  # noqa: F401
