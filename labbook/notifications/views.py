"""Pages of labbook.notifications (routes attach to ``labbook.notifications.bp``)."""
from __future__ import annotations

from labbook.notifications import bp  # noqa: F401
