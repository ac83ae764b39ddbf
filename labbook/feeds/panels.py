"""What the calendar-link panel (``feeds/_panel.html``) shows on the profile, instrument and
team pages: offered to every template as ``feed_panel`` by ``labbook/feeds/__init__.py``, so
those pages' views need not know about feeds."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user

from labbook.feeds.models import CalendarFeed
from labbook.feeds.services import active_feeds, may_subscribe, target_name


@dataclass
class PanelRow:
    scope: str
    target_id: int
    title: str
    explanation: str
    feeds: list[CalendarFeed] = field(default_factory=list)


def title_of(scope: str, target: Any) -> str:
    name = target_name(scope, target, str(get_locale() or "en"))
    titles = {
        "user": _("My bookings"),
        "team": _("Bookings of the team %(name)s", name=name),
        "instrument": _("Schedule of %(name)s", name=name),
        "facility": _("Schedule of the whole facility %(name)s", name=name),
    }
    return titles[scope]


def explanation_of(scope: str) -> str:
    if scope == "user":
        return _("Your bookings with their purpose; cancelled ones disappear by themselves.")
    if scope == "team":
        return _("The bookings charged to the team. Who booked and why show only for the "
                 "bookings you may open in labbook; the others say “Busy”.")
    if scope == "instrument":
        return _("Its bookings and maintenance. Who booked and why show only for the "
                 "bookings you may open in labbook; the others say “Busy”.")
    return _("The same for all the facility's instruments, with its closures.")


def feed_panel(targets: list[tuple[str, Any]]) -> list[PanelRow]:
    """One row per (scope, target) the current user may subscribe to, with their active
    links to it (one query for all of them)."""
    if not current_user.is_authenticated:
        return []
    user = current_user._get_current_object()
    wanted = [(scope, target) for scope, target in targets
              if target is not None and may_subscribe(user, scope, target.id)]
    rows = {(scope, target.id): PanelRow(scope, target.id, title_of(scope, target),
                                         explanation_of(scope))
            for scope, target in wanted}
    for feed in active_feeds(user, list(rows)):
        rows[(feed.scope, feed.target_id)].feeds.append(feed)
    return list(rows.values())
