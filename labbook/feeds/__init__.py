"""Calendar feeds: secret-token iCalendar subscriptions, single-booking .ics files and
closure import (SPEC section 7)."""

from flask import Blueprint  # noqa: E402

bp = Blueprint("feeds", __name__, template_folder="templates")

from labbook.feeds import import_views, views  # noqa: E402,F401  (routes attach to bp)
