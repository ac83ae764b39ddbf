"""Calendar feeds: secret-token iCalendar subscriptions, single-booking .ics files and
closure import (SPEC section 7)."""

from flask import Blueprint  # noqa: E402

bp = Blueprint("feeds", __name__, template_folder="templates")

from labbook.feeds import import_views, views  # noqa: E402,F401  (routes attach to bp)
from labbook.feeds.panels import feed_panel  # noqa: E402


@bp.app_context_processor
def _feed_helpers() -> dict:
    """``feed_panel([(scope, target), ...])`` for the panel included on the profile,
    instrument and team pages (``feeds/_panel.html``)."""
    return {"feed_panel": feed_panel}
