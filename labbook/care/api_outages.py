"""JSON API of equipment care (routes attach to ``labbook.api.bp``)."""
from __future__ import annotations

from labbook.api import bp  # noqa: F401
