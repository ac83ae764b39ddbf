"""Closure import pages (routes attach to ``labbook.feeds.bp``)."""
from __future__ import annotations

from labbook.feeds import bp  # noqa: F401
