"""Booking and outage states in words, for pages and messages (the stored values are
English identifiers; people read these, in their language)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

STATE_LABELS = {
    "pending": _l("Awaiting approval"),
    "confirmed": _l("Confirmed"),
    "in_use": _l("In use"),
    "completed": _l("Completed"),
    "cancelled": _l("Cancelled"),
    "rejected": _l("Rejected"),
    "no_show": _l("No-show"),
    "expired": _l("Expired"),
    "scheduled": _l("Scheduled"),
}


def state_label(state: str) -> str:
    return str(STATE_LABELS.get(state, state))
