"""Pages of labbook.scheduler (routes attach to ``labbook.scheduler.bp``)."""
from __future__ import annotations

from labbook.scheduler import bp  # noqa: F401
